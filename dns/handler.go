package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// maxChase bounds CNAME chains followed inside a zone.
const maxChase = 8

// find returns the served zone closest enclosing name (canonical).
func (v *view) find(name string) *zoneView {
	for off, end := 0, false; !end; off, end = mdns.NextLabel(name, off) {
		if zv := v.zones[name[off:]]; zv != nil {
			return zv
		}
	}
	return v.zones["."]
}

func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// respond builds the answer to a query, or returns nil when nothing
// should be sent. tcp says which transport it came over; it decides the
// RFC 8482 ANY behaviour. It does not size the answer: callers truncate.
func (s *Server) respond(v *view, req *mdns.Msg, tcp bool, src netip.Addr) *mdns.Msg {
	resp, _ := s.respondDyn(v, req, tcp, src)
	return resp
}

// answer is what one lookup works on: the zone, the response being
// built, the transport, and whether a health-steered name went into it
// (such answers change with time: TTL ramp, rotation, so they are not
// cached).
type answer struct {
	zv   *zoneView
	resp *mdns.Msg
	tcp  bool
	dyn  bool
}

// respondDyn is respond; dyn reports whether the answer depends on a
// health-steered name (or on the client's address: IXFR) and may not be
// reused for another query.
func (s *Server) respondDyn(v *view, req *mdns.Msg, tcp bool, src netip.Addr) (_ *mdns.Msg, dyn bool) {
	if req.Response {
		return nil, false
	}
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	if countOPT(req.Extra) > 1 {
		// RFC 6891 section 6.1.1: more than one OPT is a format error.
		resp.Rcode = mdns.RcodeFormatError
		return resp, false
	}
	ropt, done := s.ednsReply(v, req, resp)
	if done {
		return resp, false
	}
	defer func() {
		if ropt != nil {
			resp.Extra = append(resp.Extra, ropt)
		}
	}()
	if req.Opcode != mdns.OpcodeQuery {
		resp.Rcode = mdns.RcodeNotImplemented
		return resp, false
	}
	if len(req.Question) != 1 || len(req.Answer) > 0 {
		resp.Rcode = mdns.RcodeFormatError
		return resp, false
	}
	q := req.Question[0]
	switch q.Qtype {
	case mdns.TypeOPT, mdns.TypeTSIG, mdns.TypeTKEY, mdns.TypeMAILA, mdns.TypeMAILB, mdns.TypeAXFR:
		// AXFR comes here only over UDP; transfers are TCP.
		resp.Rcode = mdns.RcodeNotImplemented
		return resp, false
	}
	if q.Qclass != mdns.ClassINET {
		resp.Rcode = mdns.RcodeRefused
		return resp, false
	}
	name := lower(q.Name)
	zv := v.find(name)
	if zv == nil {
		resp.Rcode = mdns.RcodeRefused
		return resp, false
	}
	if q.Qtype == mdns.TypeIXFR {
		// Over UDP, answer IXFR with the SOA alone (RFC 1995 section 2):
		// the client then asks over TCP if it is behind.
		if name != zv.z.origin || !s.xfrAllowed(zv, src, req, nil) {
			resp.Rcode = mdns.RcodeRefused
			return resp, true
		}
		resp.Authoritative = true
		resp.Answer = append(resp.Answer, zv.soa)
		return resp, true
	}
	resp.Authoritative = true
	a := &answer{zv: zv, resp: resp, tcp: tcp}
	s.lookup(a, q.Name, name, q.Qtype, 0)
	return resp, a.dyn
}

// ednsReply makes the OPT of the response to req: our buffer size, DO
// copied, ECS echoed with scope /0. done means resp is complete: BADVERS,
// or FORMERR for a malformed ECS option (both with the OPT).
func (s *Server) ednsReply(v *view, req, resp *mdns.Msg) (ropt *mdns.OPT, done bool) {
	opt := req.IsEdns0()
	if opt == nil {
		return nil, false
	}
	ropt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	ropt.SetUDPSize(uint16(v.udpSize))
	if opt.Do() {
		ropt.SetDo()
	}
	if opt.Version() != 0 {
		// The question stays: the client matches the answer to it.
		resp.Rcode = mdns.RcodeBadVers
		resp.Extra = append(resp.Extra, ropt)
		return ropt, true
	}
	for _, o := range opt.Option {
		if e, ok := o.(*mdns.EDNS0_SUBNET); ok {
			if !validECS(e) {
				resp.Rcode = mdns.RcodeFormatError
				resp.Extra = append(resp.Extra, ropt)
				return ropt, true
			}
			// Our answers do not depend on the client's network:
			// scope /0 lets resolvers cache them for everyone.
			ropt.Option = append(ropt.Option, &mdns.EDNS0_SUBNET{
				Code: mdns.EDNS0SUBNET, Family: e.Family,
				SourceNetmask: e.SourceNetmask, SourceScope: 0, Address: e.Address,
			})
		}
	}
	return ropt, false
}

// validECS checks an ECS option as RFC 7871 section 7.1.1 asks.
func validECS(e *mdns.EDNS0_SUBNET) bool {
	var bits int
	switch e.Family {
	case 0:
		// What dig sends for +subnet=0: no address, nothing to check.
		return e.SourceNetmask == 0 && e.SourceScope == 0
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return false
	}
	if int(e.SourceNetmask) > bits || e.SourceScope != 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok {
		return e.SourceNetmask == 0
	}
	if e.Family == 1 {
		a = a.Unmap()
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	return err == nil && p.Addr() == a
}

// negSOA is the SOA put in the authority section of negative answers,
// with the negative-caching TTL (RFC 2308).
func negSOA(zv *zoneView) mdns.RR {
	soa := *zv.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return &soa
}

// withOwner returns rr with owner as its name, sharing rr when the
// spelling is the same.
func withOwner(rr mdns.RR, owner string) mdns.RR {
	if rr.Header().Name == owner {
		return rr
	}
	c := mdns.Copy(rr)
	c.Header().Name = owner
	return c
}

// lookup answers qtype for the name (owner as the client spelled it,
// name canonical) in zone zv.
// It is long on purpose: it is the per-query hot path and follows RFC 1034
// section 4.3.2's steps in order (referral, wildcard, CNAME, ANY, dynamic
// addresses, static records with glue, NODATA), clearest as one sequence.
func (s *Server) lookup(a *answer, owner, name string, qtype uint16, depth int) {
	zv, resp, tcp := a.zv, a.resp, a.tcp
	z := zv.z
	if z.cuts && s.refer(a, name, qtype, depth) {
		return
	}
	n := z.nodes[name]
	if n == nil {
		// Wildcard (RFC 4592): *.<closest encloser>.
		ce := parentName(name)
		for z.nodes[ce] == nil && ce != z.origin && ce != "." {
			ce = parentName(ce)
		}
		n = z.nodes["*."+ce]
		if n == nil {
			resp.Rcode = mdns.RcodeNameError
			resp.Ns = append(resp.Ns, negSOA(zv))
			return
		}
	}
	// ANY matches the CNAME itself (RFC 1034 section 3.6.2): no chase.
	if cn := n.rrs[mdns.TypeCNAME]; len(cn) > 0 && qtype != mdns.TypeCNAME && qtype != mdns.TypeANY {
		resp.Answer = append(resp.Answer, withOwner(cn[0], owner))
		target := cn[0].(*mdns.CNAME).Target
		t := lower(target)
		if depth < maxChase && mdns.IsSubDomain(z.origin, t) {
			s.lookup(a, target, t, qtype, depth+1)
		}
		return
	}
	start := len(resp.Answer)
	if name == z.origin && (qtype == mdns.TypeSOA || qtype == mdns.TypeANY && tcp) {
		resp.Answer = append(resp.Answer, withOwner(zv.soa, owner))
	}
	switch {
	case qtype == mdns.TypeANY && len(n.rrs[mdns.TypeCNAME]) > 0:
		resp.Answer = append(resp.Answer, withOwner(n.rrs[mdns.TypeCNAME][0], owner))
	case qtype == mdns.TypeANY && !tcp:
		// RFC 8482: one synthesized HINFO instead of everything.
		if len(n.rrs) > 0 || n.dyn != nil {
			resp.Answer = append(resp.Answer, &mdns.HINFO{
				Hdr: mdns.RR_Header{Name: owner, Rrtype: mdns.TypeHINFO, Class: mdns.ClassINET, Ttl: 3600},
				Cpu: "RFC8482",
			})
		}
	case qtype == mdns.TypeANY:
		for _, set := range n.rrs {
			for _, rr := range set {
				resp.Answer = append(resp.Answer, withOwner(rr, owner))
			}
		}
		if n.dyn != nil {
			for f := range 2 {
				s.dynAnswer(a, n.dyn, f, owner)
			}
		}
	case (qtype == mdns.TypeA || qtype == mdns.TypeAAAA) && n.dyn != nil:
		f := famA
		if qtype == mdns.TypeAAAA {
			f = famAAAA
		}
		if !s.dynAnswer(a, n.dyn, f, owner) {
			return // SERVFAIL
		}
	default:
		for _, rr := range n.rrs[qtype] {
			resp.Answer = append(resp.Answer, withOwner(rr, owner))
		}
		// Additional section: addresses of in-zone targets.
		for _, rr := range resp.Answer[start:] {
			switch r := rr.(type) {
			case *mdns.NS:
				s.glue(a, r.Ns, false)
			case *mdns.MX:
				s.glue(a, r.Mx, false)
			case *mdns.SRV:
				s.glue(a, r.Target, false)
			}
		}
	}
	if len(resp.Answer) == start && resp.Rcode == mdns.RcodeSuccess {
		resp.Ns = append(resp.Ns, negSOA(zv)) // NODATA
	}
}

// refer answers with a referral when a delegation lies between the apex
// and the name (DS at the cut itself is ours), and reports whether it did.
func (s *Server) refer(a *answer, name string, qtype uint16, depth int) bool {
	z := a.zv.z
	cut := ""
	for p := name; p != z.origin && p != "."; p = parentName(p) {
		if n := z.nodes[p]; n != nil && n.cut {
			cut = p
		}
	}
	if cut == "" || cut == name && qtype == mdns.TypeDS {
		return false
	}
	if depth == 0 {
		a.resp.Authoritative = false
	}
	ns := z.nodes[cut].rrs[mdns.TypeNS]
	a.resp.Ns = append(a.resp.Ns, ns...)
	for _, rr := range ns {
		s.glue(a, rr.(*mdns.NS).Ns, true)
	}
	return true
}

// dynAnswer appends a health-steered name's addresses of family f. It
// returns false when the answer is SERVFAIL.
func (s *Server) dynAnswer(a *answer, n *dynName, f int, owner string) bool {
	zv, resp := a.zv, a.resp
	a.dyn = true
	d := zv.dynOf(n)
	if d == nil {
		return true
	}
	if d.servfail {
		n.stats.servfail.Add(1)
		resp.Rcode = mdns.RcodeServerFailure
		resp.Answer = resp.Answer[:0]
		resp.Ns = nil
		return false
	}
	before := len(resp.Answer)
	resp.Answer = d.answer(resp.Answer, f, owner, d.ttlAt(s.now()), s.rot.Add(1))
	if len(resp.Answer) > before {
		if d.allDown {
			n.stats.allDown.Add(1)
		} else {
			n.stats.answers.Add(1)
		}
	}
	return true
}

// glue adds the in-zone addresses of target to the additional section.
// Under a delegation (referral) the static glue is all there is.
func (s *Server) glue(a *answer, target string, referral bool) {
	zv, resp := a.zv, a.resp
	t := lower(target)
	if !mdns.IsSubDomain(zv.z.origin, t) {
		return
	}
	n := zv.z.nodes[t]
	if n == nil {
		return
	}
	for _, rr := range resp.Extra {
		if strings.EqualFold(rr.Header().Name, target) {
			return
		}
	}
	if n.dyn != nil && !referral {
		a.dyn = true
		if d := zv.dynOf(n.dyn); d != nil && !d.servfail {
			ttl := d.ttlAt(s.now())
			for f := range 2 {
				resp.Extra = d.answer(resp.Extra, f, target, ttl, s.rot.Add(1))
			}
		}
		return
	}
	resp.Extra = append(resp.Extra, n.rrs[mdns.TypeA]...)
	resp.Extra = append(resp.Extra, n.rrs[mdns.TypeAAAA]...)
}

// xfrAllowed checks a transfer request: the client's address, and the
// TSIG key when the zone requires one. tsigErr is the transport's TSIG
// verification result (nil when none was checked).
func (s *Server) xfrAllowed(zv *zoneView, src netip.Addr, req *mdns.Msg, tsigErr error) bool {
	ok := false
	for _, p := range zv.z.xfrAllow {
		if p.Contains(src) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	if zv.z.xfrKey == "" {
		return true
	}
	t := req.IsTsig()
	return t != nil && tsigErr == nil && mdns.CanonicalName(t.Hdr.Name) == zv.z.xfrKey
}

func countOPT(extra []mdns.RR) int {
	n := 0
	for _, rr := range extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			n++
		}
	}
	return n
}
