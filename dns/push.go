package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// pushConf is a zone's RFC 2136 push target.
type pushConf struct {
	server   netip.AddrPort
	zone     string
	key      string
	timeout  time.Duration
	retryMin time.Duration
	retryMax time.Duration
	verify   time.Duration
}

func compilePush(cfg *config.Config, zc *config.DNSZone, origin string, idx int) (*pushConf, error) {
	p := zc.Push
	if !p.Server.IsValid() {
		return nil, errors.New("no server")
	}
	pc := &pushConf{
		server:   p.Server,
		zone:     origin,
		timeout:  orDur(p.Timeout, config.DefaultDNSPushTO),
		retryMin: orDur(p.RetryMin, config.DefaultDNSRetryMin),
		retryMax: orDur(p.RetryMax, config.DefaultDNSRetryMax),
		verify:   p.Verify.D(),
	}
	if p.Verify == 0 && !cfg.Has(fmt.Sprintf("dns.zones[%d].push.verify", idx)) {
		pc.verify = config.DefaultDNSVerify
	}
	if p.Zone != "" {
		z, ok := config.AbsName(p.Zone, ".")
		if !ok {
			return nil, fmt.Errorf("bad zone %q", p.Zone)
		}
		pc.zone = z
	}
	if p.Key != "" {
		pc.key = mdns.CanonicalName(p.Key)
	}
	return pc, nil
}

// rrsetKey names one managed RRset.
type rrsetKey struct {
	name string
	typ  uint16
}

func (k rrsetKey) String() string { return k.name + " " + mdns.TypeToString[k.typ] }

// rrset is the content of one managed RRset: addresses sorted.
type rrset struct {
	ttl   uint32
	addrs []netip.Addr
}

// pushState is the managed RRsets of a zone.
type pushState map[rrsetKey]rrset

// desiredOf is what the primary should hold for a zone's names.
func desiredOf(zv *zoneView) pushState {
	st := pushState{}
	for _, n := range zv.z.names {
		d := zv.dynOf(n)
		for f := range 2 {
			if !n.managed[f] {
				continue // never managed: leave whatever is there
			}
			a := slices.Clone(d.published(f))
			slices.SortFunc(a, netip.Addr.Compare)
			a = slices.Compact(a)
			st[rrsetKey{n.name, famType(f)}] = rrset{ttl: n.ttl, addrs: a}
		}
	}
	return st
}

func (p pushState) String() string {
	var b strings.Builder
	for i, k := range p.keys() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d %v", k, p[k].ttl, p[k].addrs)
	}
	return b.String()
}

func (p pushState) keys() []rrsetKey {
	ks := make([]rrsetKey, 0, len(p))
	for k := range p {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		return cmp.Or(cmp.Compare(ks[i].name, ks[j].name), cmp.Compare(ks[i].typ, ks[j].typ)) < 0
	})
	return ks
}

// pusher keeps one primary in sync. It is the only writer of what it
// believes the primary holds (last), which starts unknown and is read
// back from the primary, so a restart causes no churn either.
type pusher struct {
	s      *Server
	conf   pushConf
	mu     sync.Mutex
	want   pushState
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// reconcilePushers starts, restarts and stops pushers to match the zones.
// Called with s.mu held.
func (s *Server) reconcilePushers() {
	if !s.running {
		return
	}
	want := map[string]*pushConf{}
	for _, z := range s.zones {
		if z.push != nil && !s.standby {
			want[z.origin] = z.push
		}
	}
	for origin, p := range s.pushers {
		if c := want[origin]; c == nil || *c != p.conf {
			p.stop()
			delete(s.pushers, origin)
		}
	}
	for origin, c := range want {
		if s.pushers[origin] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		p := &pusher{s: s, conf: *c, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		s.pushers[origin] = p
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(p.done)
			p.run(ctx)
		}()
	}
}

// SetStandby makes the server the standby node of an HA pair (the
// daemon calls it with every role change of its ha node) or, with false,
// the master. The standby keeps answering as the master does (both nodes
// may be listed as the zones' name servers), but only the master pushes
// the records to a zone's primary (RFC 2136): two nodes pushing would
// fight over them. On becoming master the server pushes the records it
// answers with at once (after reading what the primary holds, so nothing
// the partner already pushed is pushed again). Safe to call from any
// goroutine, before or during Run.
func (s *Server) SetStandby(standby bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.standby == standby {
		return
	}
	s.standby = standby
	s.reconcilePushers()
	if v := s.view.Load(); v != nil {
		for _, zv := range v.all {
			if p := s.pushers[zv.z.origin]; p != nil {
				p.set(desiredOf(zv))
			}
		}
	}
	pushed := 0
	for _, z := range s.zones {
		if z.push != nil {
			pushed++
		}
	}
	if pushed == 0 {
		return
	}
	if standby {
		s.log.Info("ha standby: dns updates to the primaries left to the master; still answering", "zones", pushed)
	} else {
		s.log.Info("ha master: pushing the records to the primaries", "zones", pushed)
	}
}

// set queues the latest desired state.
func (p *pusher) set(want pushState) {
	p.mu.Lock()
	p.want = want
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pusher) stop() {
	p.cancel()
	<-p.done
}

func (p *pusher) run(ctx context.Context) {
	log := p.s.log.With("zone", p.conf.zone, "primary", p.conf.server)
	var last pushState // nil: unknown
	var verify <-chan time.Time
	if p.conf.verify > 0 {
		t := time.NewTicker(p.conf.verify)
		defer t.Stop()
		verify = t.C
	}
	backoff := time.Duration(0)
	for {
		p.mu.Lock()
		want := p.want
		p.mu.Unlock()
		if want != nil {
			if err := p.sync(ctx, log, want, &last); err != nil {
				if ctx.Err() != nil {
					return
				}
				p.s.ctr.pushFail.Add(1)
				backoff = min(max(2*backoff, p.conf.retryMin), p.conf.retryMax)
				log.Warn("dns update failed", "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-verify:
			if want == nil {
				continue
			}
			got, err := p.read(ctx, want)
			if err != nil {
				log.Debug("dns push verify failed", "err", err)
				continue
			}
			if !equalState(got, last) {
				log.Warn("records at the primary differ from what was pushed: repairing", "want", want, "found", got)
				last = got
			}
		}
	}
}

func equalState(a, b pushState) bool {
	if a == nil || b == nil || len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.ttl != y.ttl && (len(x.addrs) > 0 || len(y.addrs) > 0) || !slices.Equal(x.addrs, y.addrs) {
			return false
		}
	}
	return true
}

// sync brings the primary from *last to want with one update, if they
// differ.
func (p *pusher) sync(ctx context.Context, log interface {
	Info(string, ...any)
	Debug(string, ...any)
}, want pushState, last *pushState) error {
	if *last == nil {
		got, err := p.read(ctx, want)
		if err != nil {
			log.Debug("reading the primary's records failed: replacing them", "err", err)
		} else {
			*last = got
		}
	}
	m, added, removed, changes := buildUpdate(p.conf.zone, want, *last)
	if len(changes) == 0 {
		return nil
	}
	if p.conf.key != "" {
		k := p.s.keys.get(p.conf.key)
		if k == nil {
			return fmt.Errorf("tsig key %s is not configured", p.conf.key)
		}
		m.SetTsig(k.name, k.alg, 300, time.Now().Unix())
	}
	r, err := p.s.exchange(ctx, "tcp", m, p.conf.server, p.conf.timeout)
	if err != nil {
		return err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return fmt.Errorf("primary answered %s", mdns.RcodeToString[r.Rcode])
	}
	p.s.ctr.pushed.Add(1)
	p.s.ctr.pushAdded.Add(uint64(added))
	p.s.ctr.pushRemoved.Add(uint64(removed))
	*last = want
	log.Info("dns update pushed", "changes", strings.Join(changes, "; "), "added", added, "removed", removed)
	return nil
}

func addrRRs(name string, typ uint16, ttl uint32, addrs []netip.Addr) []mdns.RR {
	out := make([]mdns.RR, 0, len(addrs))
	for _, a := range addrs {
		h := mdns.RR_Header{Name: name, Rrtype: typ, Class: mdns.ClassINET, Ttl: ttl}
		if typ == mdns.TypeA {
			out = append(out, &mdns.A{Hdr: h, A: net.IP(a.AsSlice())})
		} else {
			out = append(out, &mdns.AAAA{Hdr: h, AAAA: net.IP(a.AsSlice())})
		}
	}
	return out
}

// buildUpdate makes the RFC 2136 update from last to want: per RRset,
// delete the addresses no longer wanted and add the new ones; when the
// primary's content is unknown or its TTL differs, replace the RRset.
func buildUpdate(zone string, want, last pushState) (m *mdns.Msg, added, removed int, changes []string) {
	m = new(mdns.Msg)
	m.SetUpdate(zone)
	for _, k := range want.keys() {
		w := want[k]
		l, known := last[k]
		switch {
		case known && (l.ttl == w.ttl || len(l.addrs) == 0):
			var rm, add []netip.Addr
			for _, a := range l.addrs {
				if !slices.Contains(w.addrs, a) {
					rm = append(rm, a)
				}
			}
			for _, a := range w.addrs {
				if !slices.Contains(l.addrs, a) {
					add = append(add, a)
				}
			}
			if len(rm) == 0 && len(add) == 0 {
				continue
			}
			if len(rm) > 0 {
				m.Remove(addrRRs(k.name, k.typ, 0, rm))
			}
			if len(add) > 0 {
				m.Insert(addrRRs(k.name, k.typ, w.ttl, add))
			}
			added += len(add)
			removed += len(rm)
			changes = append(changes, fmt.Sprintf("%s +%v -%v", k, add, rm))
		default:
			m.RemoveRRset(addrRRs(k.name, k.typ, 0, []netip.Addr{netip.IPv4Unspecified()})[:1])
			if len(w.addrs) > 0 {
				m.Insert(addrRRs(k.name, k.typ, w.ttl, w.addrs))
			}
			added += len(w.addrs)
			removed += len(l.addrs)
			changes = append(changes, fmt.Sprintf("%s = %v ttl %d", k, w.addrs, w.ttl))
		}
	}
	return m, added, removed, changes
}

// read queries the primary for the managed RRsets, over one TCP
// connection.
func (p *pusher) read(ctx context.Context, want pushState) (pushState, error) {
	ctx, cancel := context.WithTimeout(ctx, p.conf.timeout)
	defer cancel()
	c, err := p.s.dial(ctx, "tcp", p.conf.server.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	co := &mdns.Conn{Conn: c}
	cl := &mdns.Client{Net: "tcp", Timeout: p.conf.timeout}
	got := pushState{}
	for _, k := range want.keys() {
		q := new(mdns.Msg).SetQuestion(k.name, k.typ)
		q.RecursionDesired = false
		r, _, err := cl.ExchangeWithConnContext(ctx, q, co)
		if err != nil {
			return nil, err
		}
		if r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError {
			return nil, fmt.Errorf("query %s: %s", k, mdns.RcodeToString[r.Rcode])
		}
		var set rrset
		for _, rr := range r.Answer {
			h := rr.Header()
			if h.Rrtype != k.typ || !strings.EqualFold(h.Name, k.name) {
				continue
			}
			set.ttl = h.Ttl
			switch v := rr.(type) {
			case *mdns.A:
				a, _ := netip.AddrFromSlice(v.A.To4())
				set.addrs = append(set.addrs, a)
			case *mdns.AAAA:
				a, _ := netip.AddrFromSlice(v.AAAA)
				set.addrs = append(set.addrs, a)
			}
		}
		slices.SortFunc(set.addrs, netip.Addr.Compare)
		got[k] = set
	}
	return got, nil
}
