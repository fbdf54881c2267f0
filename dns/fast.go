package dns

import (
	"encoding/binary"

	mdns "github.com/miekg/dns"
)

// wireQuery is a plain query parsed straight from the wire: one
// question of class IN, opcode QUERY, no answer or authority records, at
// most one OPT record (version 0, no options). Anything else is not one.
type wireQuery struct {
	name  [256]byte // lower-cased, presentation form
	n     int       // length of name
	qtype uint16
	qend  int // end of the question
	edns  bool
	do    bool
	size  int // the answer's size limit
}

// parseWire parses in into q; false means in is not a plain query (or
// has a name that needs escapes) and takes the general path.
func parseWire(v *view, in []byte, q *wireQuery) bool {
	// Header: a query (QR 0, opcode QUERY), one question, nothing else but
	// maybe one additional record.
	if len(in) < 17 || in[2]&0xf8 != 0 || in[4] != 0 || in[5] != 1 ||
		in[6]|in[7]|in[8]|in[9]|in[10] != 0 || in[11] > 1 {
		return false
	}
	n, off := 0, 12
	for {
		if off >= len(in) {
			return false
		}
		l := int(in[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(in) || n+l+1 > 254 {
			return false
		}
		for _, c := range in[off : off+l] {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
			q.name[n] = c
			n++
		}
		q.name[n] = '.'
		n++
		off += l
	}
	if n == 0 || off+4 > len(in) || binary.BigEndian.Uint16(in[off+2:]) != mdns.ClassINET {
		return false
	}
	q.n, q.qtype, q.qend = n, binary.BigEndian.Uint16(in[off:]), off+4
	q.size, q.edns, q.do = mdns.MinMsgSize, false, false
	switch q.qtype {
	case mdns.TypeOPT, mdns.TypeTSIG, mdns.TypeTKEY, mdns.TypeAXFR, mdns.TypeIXFR:
		return false
	}
	p := q.qend
	if in[11] == 0 {
		return len(in) == p
	}
	// Exactly an empty OPT: root owner, type OPT, version 0, no rdata.
	if len(in) != p+11 || in[p] != 0 || binary.BigEndian.Uint16(in[p+1:]) != mdns.TypeOPT ||
		in[p+6] != 0 || binary.BigEndian.Uint16(in[p+9:]) != 0 {
		return false
	}
	q.edns = true
	q.do = in[p+7]&0x80 != 0
	q.size = min(max(int(binary.BigEndian.Uint16(in[p+3:])), mdns.MinMsgSize), v.udpSize)
	return true
}

// fastAnswer answers the query that dominates the traffic of a steered
// site, straight from the wire into out, without unpacking or allocating:
// a plain query (parseWire) of type A or AAAA for a health-steered name
// that has addresses to give. Anything else (and anything odd) returns ok
// false and takes the general path, which gives the same answer for
// these queries.
func (s *Server) fastAnswer(v *view, in []byte, q *wireQuery, out []byte) (resp []byte, ok bool) {
	qtype, qend, edns, do, size := q.qtype, q.qend, q.edns, q.do, q.size
	if qtype != mdns.TypeA && qtype != mdns.TypeAAAA {
		return nil, false
	}
	n := q.n
	name := q.name[:n]

	var zv *zoneView
	for i := 0; i < n; {
		if zv = v.zones[string(name[i:])]; zv != nil {
			break
		}
		for i < n && name[i] != '.' {
			i++
		}
		i++
	}
	if zv == nil || zv.z.cuts {
		return nil, false
	}
	nd := zv.z.nodes[string(name)]
	if nd == nil || nd.dyn == nil {
		return nil, false
	}
	d := zv.dynOf(nd.dyn)
	f, rdlen := famA, 4
	if qtype == mdns.TypeAAAA {
		f, rdlen = famAAAA, 16
	}
	if d == nil || d.servfail || len(d.set(f).ips) == 0 {
		return nil, false
	}
	var ib [16]int
	idx := d.indices(f, s.rot.Add(1), ib[:0])
	total := qend + len(idx)*(12+rdlen)
	if edns {
		total += 11
	}
	if total > size {
		return nil, false
	}
	ttl := d.ttlAt(s.now())

	out = append(out[:0], in[:qend]...)
	out[2] = 0x84 | in[2]&0x01 // QR, AA; RD copied
	out[3] = in[3] & 0x10      // CD copied; RA 0, RCODE NOERROR
	binary.BigEndian.PutUint16(out[6:], uint16(len(idx)))
	out[11] = 0
	if edns {
		out[11] = 1
	}
	set := d.set(f)
	for _, i := range idx {
		// Owner: a pointer to the question's name, as the client spelled it.
		out = append(out, 0xc0, 12, 0, byte(qtype), 0, 1,
			byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), 0, byte(rdlen))
		out = append(out, set.ips[i]...)
	}
	if edns {
		var fl byte
		if do {
			fl = 0x80
		}
		us := uint16(v.udpSize)
		out = append(out, 0, 0, byte(mdns.TypeOPT), byte(us>>8), byte(us), 0, 0, fl, 0, 0, 0)
	}
	if d.allDown {
		nd.dyn.stats.allDown.Add(1)
	} else {
		nd.dyn.stats.answers.Add(1)
	}
	s.ctr.rcode(mdns.RcodeSuccess)
	return out, true
}
