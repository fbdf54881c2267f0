package dns

import "encoding/binary"

// answerCache holds the packed answers of one UDP reader for plain
// queries (parseWire) whose answer depends only on the view and the
// query: static records, NXDOMAIN, NODATA, referrals, REFUSED. An answer
// is reused with the ID, RD and CD of the new query patched in and its
// question copied over, which keeps the client's spelling (0x20): the
// answer's owner names point at the question. Health-steered answers
// are never cached (their TTL ramps and their order rotates); a new view
// empties the cache. Each reader has its own: no locking.
type answerCache struct {
	v *view
	m map[string]cachedAnswer
}

type cachedAnswer struct {
	b     []byte
	rcode int
	tc    bool
}

// answerCacheMax bounds a cache; a full cache is emptied (a flood of
// random names gets no further than that).
const answerCacheMax = 4096

func newAnswerCache() *answerCache { return &answerCache{m: map[string]cachedAnswer{}} }

// key is the lower-cased name, the type, the EDNS flags and the size
// limit.
func (q *wireQuery) key(b []byte) []byte {
	b = append(b, q.name[:q.n]...)
	b = binary.BigEndian.AppendUint16(b, q.qtype)
	var f byte
	if q.edns {
		f |= 1
	}
	if q.do {
		f |= 2
	}
	b = append(b, f)
	return binary.BigEndian.AppendUint16(b, uint16(q.size))
}

// answer writes the cached answer to q into out.
func (c *answerCache) answer(s *Server, v *view, in []byte, q *wireQuery, out []byte) ([]byte, bool) {
	if c == nil || c.v != v {
		return nil, false
	}
	var kb [264]byte
	e, ok := c.m[string(q.key(kb[:0]))]
	if !ok {
		return nil, false
	}
	out = append(out[:0], e.b...)
	out[0], out[1] = in[0], in[1]
	out[2] = e.b[2]&^0x01 | in[2]&0x01 // RD copied
	out[3] = e.b[3]&^0x10 | in[3]&0x10 // CD copied
	copy(out[12:q.qend], in[12:q.qend])
	s.ctr.rcode(e.rcode)
	if e.tc {
		s.ctr.truncated.Add(1)
	}
	return out, true
}

// store keeps b, the answer to q (spelled in lower case) in view v.
func (c *answerCache) store(v *view, q *wireQuery, b []byte, rcode int, tc bool) {
	if c == nil || len(b) < q.qend {
		return
	}
	if c.v != v || len(c.m) >= answerCacheMax {
		c.v = v
		clear(c.m)
	}
	c.m[string(q.key(nil))] = cachedAnswer{b: append([]byte(nil), b...), rcode: rcode, tc: tc}
}
