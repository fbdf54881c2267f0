package dns

import (
	"context"
	"net/netip"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// zoneRecords returns the zone's content for a transfer: SOA, the static
// records, the names' published addresses with their configured TTL, and
// the SOA again.
func zoneRecords(zv *zoneView) []mdns.RR {
	out := []mdns.RR{zv.soa}
	out = append(out, zv.z.static...)
	for _, n := range zv.z.names {
		d := zv.dynOf(n)
		for f := range 2 {
			for _, a := range d.published(f) {
				h := mdns.RR_Header{Name: n.name, Rrtype: famType(f), Class: mdns.ClassINET, Ttl: n.ttl}
				if f == famA {
					out = append(out, &mdns.A{Hdr: h, A: a.AsSlice()})
				} else {
					out = append(out, &mdns.AAAA{Hdr: h, AAAA: a.AsSlice()})
				}
			}
		}
	}
	return append(out, zv.soa)
}

// transfer serves AXFR, and IXFR as a full transfer in AXFR form (RFC
// 1995 section 4), over TCP.
func (s *Server) transfer(v *view, w mdns.ResponseWriter, req *mdns.Msg, src netip.Addr) {
	q := req.Question[0]
	name := lower(q.Name)
	zv := v.zones[name]
	refuse := func(why string) {
		s.ctr.xfrRefused.Add(1)
		s.log.Info("zone transfer refused", "zone", name, "client", src, "why", why)
		m := new(mdns.Msg).SetRcode(req, mdns.RcodeRefused)
		if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		s.ctr.rcode(m.Rcode)
		w.WriteMsg(m)
	}
	if zv == nil {
		refuse("not a zone apex served here")
		return
	}
	if !s.xfrAllowed(zv, src, req, w.TsigStatus()) {
		if zv.z.xfrKey != "" {
			refuse("client not in transfer.allow, or not signed with key " + zv.z.xfrKey)
		} else {
			refuse("client not in transfer.allow")
		}
		return
	}
	if q.Qtype == mdns.TypeIXFR && len(req.Ns) > 0 {
		if soa, ok := req.Ns[0].(*mdns.SOA); ok && !serialGreater(zv.serial, soa.Serial) {
			// Up to date: the SOA alone says so.
			m := new(mdns.Msg).SetReply(req)
			m.Authoritative = true
			m.Answer = []mdns.RR{zv.soa}
			if t := req.IsTsig(); t != nil {
				m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
			}
			w.WriteMsg(m)
			return
		}
	}
	rrs := zoneRecords(zv)
	ch := make(chan *mdns.Envelope)
	go func() {
		defer close(ch)
		size, start := 0, 0
		for i, rr := range rrs {
			size += mdns.Len(rr)
			if size > 16000 {
				ch <- &mdns.Envelope{RR: rrs[start : i+1]}
				size, start = 0, i+1
			}
		}
		if start < len(rrs) {
			ch <- &mdns.Envelope{RR: rrs[start:]}
		}
	}()
	tr := new(mdns.Transfer)
	err := tr.Out(w, req, ch)
	for range ch {
	}
	if err != nil {
		s.log.Warn("zone transfer failed", "zone", zv.z.origin, "client", src, "err", err)
		return
	}
	s.ctr.xfrOut.Add(1)
	s.log.Info("zone transferred", "zone", zv.z.origin, "serial", zv.serial, "client", src, "records", len(rrs)-1, "type", mdns.TypeToString[q.Qtype])
}

// notify tells the zone's secondaries its serial changed (RFC 1996).
// Retries of an older serial stop when a newer one is being notified.
func (s *Server) notify(zv *zoneView) {
	z := zv.z
	if len(z.notify) == 0 || s.ctx == nil {
		return
	}
	g := s.notifyGen[z.origin]
	if g == nil {
		g = new(atomic.Uint64)
		s.notifyGen[z.origin] = g
	}
	gen := g.Add(1)
	ctx := s.ctx
	for _, target := range z.notify {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sendNotify(ctx, zv, target, g, gen)
		}()
	}
}

func (s *Server) sendNotify(ctx context.Context, zv *zoneView, target netip.AddrPort, g *atomic.Uint64, gen uint64) {
	z := zv.z
	wait := time.Second
	for attempt := 1; attempt <= 5; attempt++ {
		if g.Load() != gen || ctx.Err() != nil {
			return
		}
		m := new(mdns.Msg).SetNotify(z.origin)
		m.Authoritative = true
		m.Answer = []mdns.RR{zv.soa}
		if z.xfrKey != "" {
			if k := s.keys.get(z.xfrKey); k != nil {
				m.SetTsig(k.name, k.alg, 300, time.Now().Unix())
			}
		}
		r, err := s.exchange(ctx, "udp", m, target, 2*time.Second)
		if err == nil && r.Rcode == mdns.RcodeSuccess {
			s.ctr.notifySent.Add(1)
			s.log.Debug("notify acknowledged", "zone", z.origin, "serial", zv.serial, "secondary", target)
			return
		}
		s.ctr.notifyFail.Add(1)
		if err == nil {
			s.log.Info("notify rejected", "zone", z.origin, "secondary", target, "rcode", mdns.RcodeToString[r.Rcode])
			return
		}
		s.log.Debug("notify failed", "zone", z.origin, "secondary", target, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	s.log.Warn("notify not acknowledged", "zone", z.origin, "serial", zv.serial, "secondary", target)
}
