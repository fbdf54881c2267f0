package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// dnsServer is a resolver on loopback (in the test's own namespace, see
// TestMain) whose answers a test chooses; it counts the queries it gets.
type dnsServer struct {
	addr    netip.AddrPort
	udp     atomic.Int64
	tcp     atomic.Int64
	answer  func(q dns.Question, tcp bool) *dns.Msg // nil: no reply at all
	servers []*dns.Server
}

func startDNS(t *testing.T, answer func(q dns.Question, tcp bool) *dns.Msg) *dnsServer {
	t.Helper()
	s := &dnsServer{answer: answer}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := net.Listen("tcp", s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	handler := func(tcp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, r *dns.Msg) {
			if tcp {
				s.tcp.Add(1)
			} else {
				s.udp.Add(1)
			}
			m := s.answer(r.Question[0], tcp)
			if m == nil {
				return
			}
			rcode, tc := m.Rcode, m.Truncated
			m.SetReply(r)
			m.Rcode, m.Truncated = rcode, tc
			w.WriteMsg(m)
		}
	}
	s.servers = []*dns.Server{
		{PacketConn: pc, Handler: handler(false)},
		{Listener: ln, Handler: handler(true)},
	}
	for _, srv := range s.servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(s.close)
	return s
}

func (s *dnsServer) close() {
	for _, srv := range s.servers {
		srv.Shutdown()
	}
}

func (s *dnsServer) queries() int64 { return s.udp.Load() + s.tcp.Load() }

// addrAnswer answers A and AAAA questions for any name with 127.0.0.1 and
// ::1, with ttl.
func addrAnswer(ttl uint32) func(q dns.Question, tcp bool) *dns.Msg {
	return func(q dns.Question, _ bool) *dns.Msg {
		m := new(dns.Msg)
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: ttl}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP("127.0.0.1").To4()})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("::1")})
		}
		return m
	}
}

// fakeClock is a settable clock for a Resolver's cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestResolver(servers ...netip.AddrPort) (*Resolver, *fakeClock) {
	r := NewResolver(servers...)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	r.now = clk.now
	r.QueryTimeout = 300 * time.Millisecond
	return r, clk
}

// testBinding binds to lo when the tests run as root in their own
// namespace, so the error texts name an interface.
func testBinding() Binding {
	if os.Geteuid() == 0 && os.Getenv(isolatedEnv) != "" {
		return Binding{Interface: "lo"}
	}
	return Binding{}
}

func lookup(t *testing.T, r *Resolver, b Binding, host string) (netip.Addr, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Lookup(ctx, b, host)
}

func TestResolverCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  uint32
		keep time.Duration // how long the answer is cached
	}{
		{"ttl 30s", 30, 30 * time.Second},
		{"ttl 0 floored", 0, MinTTL},
		{"ttl 1 day capped", 86400, MaxTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startDNS(t, addrAnswer(tc.ttl))
			r, clk := newTestResolver(s.addr)
			b := testBinding()
			for range 3 {
				a, err := lookup(t, r, b, "web.example")
				if err != nil || a != netip.MustParseAddr("127.0.0.1") {
					t.Fatalf("lookup = %v, %v", a, err)
				}
			}
			if n := s.queries(); n != 1 {
				t.Errorf("%d queries for 3 lookups within the TTL, want 1", n)
			}
			clk.add(tc.keep - time.Millisecond)
			lookup(t, r, b, "WEB.example.") // same name
			if n := s.queries(); n != 1 {
				t.Errorf("%d queries just before expiry, want 1", n)
			}
			clk.add(time.Millisecond)
			if _, err := lookup(t, r, b, "web.example"); err != nil {
				t.Fatal(err)
			}
			if n := s.queries(); n != 2 {
				t.Errorf("%d queries after expiry, want 2", n)
			}
		})
	}
}

func TestResolverNegativeCache(t *testing.T) {
	soaMin := uint32(3)
	s := startDNS(t, func(q dns.Question, _ bool) *dns.Msg {
		m := new(dns.Msg)
		switch {
		case strings.HasPrefix(q.Name, "nx."):
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
				Ns: "ns.example.", Mbox: "h.example.", Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: soaMin})
		case strings.HasPrefix(q.Name, "nosoa."):
			m.Rcode = dns.RcodeNameError
		case strings.HasPrefix(q.Name, "v6only.") && q.Qtype == dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, AAAA: net.ParseIP("::1")})
		}
		return m
	})
	r, clk := newTestResolver(s.addr)
	b := testBinding()

	_, err := lookup(t, r, b, "nx.example")
	if !errors.Is(err, ErrNoSuchHost) {
		t.Fatalf("err = %v, want no such host", err)
	}
	want := "resolve nx.example via " + s.addr.String()
	if b.Interface != "" {
		want += " on lo"
	}
	if want += ": no such host"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	lookup(t, r, b, "nx.example")
	if n := s.queries(); n != 1 {
		t.Errorf("%d queries, want the NXDOMAIN cached", n)
	}
	clk.add(time.Duration(soaMin) * time.Second)
	lookup(t, r, b, "nx.example")
	if n := s.queries(); n != 2 {
		t.Errorf("%d queries after the SOA minimum, want 2", n)
	}

	lookup(t, r, b, "nosoa.example")
	clk.add(NegativeTTL - time.Millisecond)
	lookup(t, r, b, "nosoa.example")
	if n := s.queries(); n != 3 {
		t.Errorf("%d queries, want NXDOMAIN without SOA cached %v", n, NegativeTTL)
	}

	// No A record: AAAA is asked next, and both answers are cached.
	a, err := lookup(t, r, b, "v6only.example")
	if err != nil || a != netip.MustParseAddr("::1") {
		t.Fatalf("v6only = %v, %v", a, err)
	}
	lookup(t, r, b, "v6only.example")
	if n := s.queries(); n != 5 {
		t.Errorf("%d queries, want 5 (A and AAAA once)", n)
	}
}

// TestResolverFailover: a server that does not answer, one that fails
// (SERVFAIL), then one that answers; the next lookup starts with the one
// that answered.
func TestResolverFailover(t *testing.T) {
	silent := startDNS(t, func(dns.Question, bool) *dns.Msg { return nil })
	failing := startDNS(t, func(dns.Question, bool) *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}} })
	good := startDNS(t, addrAnswer(60))
	r, _ := newTestResolver(silent.addr, failing.addr, good.addr)
	b := testBinding()
	start := time.Now()
	a, err := lookup(t, r, b, "web.example")
	if err != nil || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("lookup = %v, %v", a, err)
	}
	if d := time.Since(start); d < r.QueryTimeout || d > 3*time.Second {
		t.Errorf("failover took %v, want about one query timeout (%v)", d, r.QueryTimeout)
	}
	if silent.queries() != 1 || failing.queries() != 1 || good.queries() != 1 {
		t.Errorf("queries silent/failing/good = %d/%d/%d, want 1/1/1", silent.queries(), failing.queries(), good.queries())
	}
	start = time.Now()
	if _, err := lookup(t, r, b, "other.example"); err != nil {
		t.Fatal(err)
	}
	if silent.queries() != 1 || failing.queries() != 1 || good.queries() != 2 {
		t.Errorf("second lookup: queries %d/%d/%d, want the good server first", silent.queries(), failing.queries(), good.queries())
	}
	if d := time.Since(start); d > r.QueryTimeout {
		t.Errorf("second lookup took %v", d)
	}
}

func TestResolverErrors(t *testing.T) {
	silent := startDNS(t, func(dns.Question, bool) *dns.Msg { return nil })
	refusing := startDNS(t, func(dns.Question, bool) *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeRefused}} })
	b := testBinding()
	on := ""
	if b.Interface != "" {
		on = " on lo"
	}

	r, clk := newTestResolver(silent.addr)
	_, err := lookup(t, r, b, "web.example")
	if want := "resolve web.example via " + silent.addr.String() + on + ": timeout"; err == nil || err.Error() != want {
		t.Errorf("silent server: %v, want %q", err, want)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("%v is not a timeout", err)
	}
	// A failure is cached briefly.
	lookup(t, r, b, "web.example")
	if n := silent.queries(); n != 1 {
		t.Errorf("%d queries, want the failure cached", n)
	}
	clk.add(FailureTTL)
	lookup(t, r, b, "web.example")
	if n := silent.queries(); n != 2 {
		t.Errorf("%d queries after %v, want 2", n, FailureTTL)
	}

	r, _ = newTestResolver(silent.addr, refusing.addr)
	_, err = lookup(t, r, b, "web.example")
	want := "resolve web.example via " + silent.addr.String() + on + ": timeout; via " + refusing.addr.String() + ": rcode REFUSED"
	if err == nil || err.Error() != want {
		t.Errorf("two failing servers: %v, want %q", err, want)
	}

	// The probe gives up before the lookup ends: its own timeout, every
	// server named.
	r, _ = newTestResolver(silent.addr, refusing.addr)
	r.QueryTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = r.Lookup(ctx, b, "web.example")
	want = "resolve web.example via " + silent.addr.String() + ", " + refusing.addr.String() + on + ": timeout"
	if err == nil || err.Error() != want {
		t.Errorf("probe timeout: %v, want %q", err, want)
	}
}

func TestResolverTruncatedTCP(t *testing.T) {
	s := startDNS(t, func(q dns.Question, tcp bool) *dns.Msg {
		m := addrAnswer(60)(q, tcp)
		if !tcp {
			m.Answer = nil
			m.Truncated = true
		}
		return m
	})
	r, _ := newTestResolver(s.addr)
	a, err := lookup(t, r, testBinding(), "big.example")
	if err != nil || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("lookup = %v, %v", a, err)
	}
	if s.udp.Load() != 1 || s.tcp.Load() != 1 {
		t.Errorf("udp/tcp queries = %d/%d, want 1/1", s.udp.Load(), s.tcp.Load())
	}
}

func TestResolverCNAMEAndFamily(t *testing.T) {
	s := startDNS(t, func(q dns.Question, _ bool) *dns.Msg {
		m := new(dns.Msg)
		cname := &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "real.example."}
		hdr := dns.RR_Header{Name: "real.example.", Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 60}
		other := dns.RR_Header{Name: "unrelated.example.", Class: dns.ClassINET, Rrtype: dns.TypeA, Ttl: 60}
		m.Answer = append(m.Answer, cname, &dns.A{Hdr: other, A: net.ParseIP("192.0.2.99").To4()})
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP("192.0.2.1").To4()})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::1")})
		}
		return m
	})
	r, _ := newTestResolver(s.addr)
	for _, tc := range []struct {
		b    Binding
		want string
	}{
		{Binding{}, "192.0.2.1"},
		{Binding{Source4: netip.MustParseAddr("198.51.100.2")}, "192.0.2.1"},
		{Binding{Source6: netip.MustParseAddr("2001:db8:1::2")}, "2001:db8::1"},
	} {
		a, err := lookup(t, r, tc.b, "www.example")
		if err != nil || a.String() != tc.want {
			t.Errorf("binding %+v: %v, %v; want %s", tc.b, a, err, tc.want)
		}
	}
}

// TestResolverConcurrent: many probes of one name at once make one query.
func TestResolverConcurrent(t *testing.T) {
	s := startDNS(t, func(q dns.Question, tcp bool) *dns.Msg {
		time.Sleep(50 * time.Millisecond)
		return addrAnswer(60)(q, tcp)
	})
	r, _ := newTestResolver(s.addr)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := r.Lookup(ctx, Binding{}, "web.example"); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 || s.queries() != 1 {
		t.Errorf("%d lookups failed, %d queries; want 0 and 1", failed.Load(), s.queries())
	}
}

// TestHTTPProbeHostName probes an HTTP server by host name through a
// resolver; with a resolver that fails, the probe fails with its text.
func TestHTTPProbeHostName(t *testing.T) {
	var hosts sync.Map
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
	}))
	defer hs.Close()
	port := hs.Listener.Addr().(*net.TCPAddr).Port
	s := startDNS(t, addrAnswer(60))
	b := testBinding()
	b.Resolver, _ = newTestResolver(s.addr)
	target := net.JoinHostPort("web.example", strconv.Itoa(port))
	p, err := New(config.Probe{Type: config.ProbeHTTP, Target: target}, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Probe(context.Background(), 2*time.Second); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, ok := hosts.Load(target); !ok {
		t.Errorf("server did not see Host %s", target)
	}

	nx := startDNS(t, func(dns.Question, bool) *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}} })
	b.Resolver, _ = newTestResolver(nx.addr)
	p, _ = New(config.Probe{Type: config.ProbeHTTP, Target: target}, b)
	_, err = p.Probe(context.Background(), 2*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "resolve web.example via "+nx.addr.String()) || !strings.HasSuffix(err.Error(), ": no such host") {
		t.Errorf("probe with NXDOMAIN: %v", err)
	}

	b.Resolver = nil
	p, _ = New(config.Probe{Type: config.ProbeTCP, Target: target}, b)
	if _, err := p.Probe(context.Background(), time.Second); err == nil || !strings.Contains(err.Error(), "no resolvers") {
		t.Errorf("probe without resolver: %v", err)
	}
}

// FuzzAnswerAddrs feeds arbitrary DNS messages to the answer reader: it
// must not panic and must return only addresses of the asked family.
func FuzzAnswerAddrs(f *testing.F) {
	m := addrAnswer(60)(dns.Question{Name: "web.example.", Qtype: dns.TypeA}, false)
	m.SetQuestion("web.example.", dns.TypeA)
	b, _ := m.Pack()
	f.Add(b, true)
	m = addrAnswer(60)(dns.Question{Name: "web.example.", Qtype: dns.TypeAAAA}, false)
	m.SetQuestion("web.example.", dns.TypeAAAA)
	m.Answer = append([]dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "web.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "web.example."}}, m.Answer...)
	b, _ = m.Pack()
	f.Add(b, false)
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		key := cacheKey{"web.example.", dns.TypeAAAA}
		if v4 {
			key.qtype = dns.TypeA
		}
		addrs, ttl := answerAddrs(&m, key)
		for _, a := range addrs {
			if a.Is4() != v4 {
				t.Errorf("address %s for type %d", a, key.qtype)
			}
		}
		if ttl < 0 {
			t.Errorf("negative ttl %v", ttl)
		}
		_ = negativeTTL(&m)
	})
}
