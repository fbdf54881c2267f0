package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// fakeSource is a monitor.Source driven by the test.
type fakeSource struct {
	monitor.Bus
	mu    sync.Mutex
	order []string
	st    map[string]monitor.Status
}

func newFakeSource(links ...string) *fakeSource {
	f := &fakeSource{st: map[string]monitor.Status{}}
	for _, l := range links {
		f.order = append(f.order, l)
		f.st[l] = monitor.Status{Link: l, State: monitor.Up, Health: monitor.Up, Since: time.Now().Add(-time.Hour)}
	}
	return f
}

func (f *fakeSource) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]monitor.Status, 0, len(f.order))
	for _, l := range f.order {
		out = append(out, f.st[l])
	}
	return out
}

// set changes a link's status and publishes the event.
func (f *fakeSource) set(link string, mod func(*monitor.Status)) {
	f.mu.Lock()
	old := f.st[link]
	st := old
	mod(&st)
	if st.State != old.State {
		st.Since = time.Now()
	}
	f.st[link] = st
	f.mu.Unlock()
	kind := monitor.StateChanged
	if st.State == old.State {
		kind = monitor.SaturationChanged
	}
	f.Publish(monitor.Event{Time: time.Now(), Kind: kind, Link: link, From: old.State, To: st.State, Reason: "test", Status: st})
}

func (f *fakeSource) state(link string, s monitor.State) {
	f.set(link, func(st *monitor.Status) { st.State, st.Health = s, s })
}

// clock is a settable clock for TTL tests.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

type testWriter struct{ t testing.TB }

// baseYAML is the config most tests start from: two links, one zone with
// static records of every kind and one health-steered name.
const baseLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, priority: 1, weight: 3}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, priority: 2, weight: 1}
`

const baseDNS = `
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records:
        - "@ NS ns1"
        - "ns1 A 198.51.100.3"
        - "@ MX 10 mail"
        - "mail A 198.51.100.25"
        - '@ TXT "v=spf1 -all"'
        - "alias CNAME www"
        - "_sip._tcp SRV 10 5 5060 www"
        - '@ CAA 0 issue "letsencrypt.org"'
        - "*.wild A 192.0.2.7"
        - "sub NS ns.sub"
        - "ns.sub A 192.0.2.53"
        - "a.b.c A 192.0.2.9"
      transfer: {allow: [127.0.0.2/32]}
      names:
        - name: www
          ttl: 30s
          min_ttl: 5s
          records:
            - {link: isp1, a: 198.51.100.2, aaaa: "2001:db8:1::2"}
            - {link: isp2, a: 198.51.100.18, aaaa: "2001:db8:2::2"}
`

func parseConfig(t testing.TB, y string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// testServer is a running server on a random loopback port.
type testServer struct {
	*Server
	src    *fakeSource
	clk    *clock
	addr   string // host:port, UDP and TCP
	stop   func()
	runErr chan error
}

// startServer runs a server for cfg on 127.0.0.1 (random port) in the
// root namespace's loopback, or through inNS if given.
func startServer(t testing.TB, cfg *config.Config, src *fakeSource, inNS func(func() error) error) *testServer {
	t.Helper()
	if cfg.DNS != nil && len(cfg.DNS.Listen) > 0 {
		for i, ap := range cfg.DNS.Listen {
			cfg.DNS.Listen[i] = netip.AddrPortFrom(ap.Addr(), 0)
		}
	}
	s, err := New(cfg, src, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clk := &clock{}
	s.now = clk.now
	if inNS != nil {
		s.inNS = inNS
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, src: src, clk: clk, runErr: make(chan error, 1)}
	go func() { ts.runErr <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if a := s.Addrs(); len(a) > 0 || (cfg.DNS != nil && len(cfg.DNS.Listen) == 0) {
			if len(a) > 0 {
				ts.addr = a[0].String()
			}
			break
		}
		select {
		case err := <-ts.runErr:
			cancel()
			t.Fatalf("Run: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("server did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-ts.runErr:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("server did not stop")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// query asks the test server over UDP (or TCP) and fails the test on a
// transport error.
func (ts *testServer) query(t testing.TB, name string, qtype uint16, mods ...func(*mdns.Msg)) *mdns.Msg {
	t.Helper()
	return queryAt(t, "udp", ts.addr, name, qtype, mods...)
}

func (ts *testServer) queryTCP(t testing.TB, name string, qtype uint16, mods ...func(*mdns.Msg)) *mdns.Msg {
	t.Helper()
	return queryAt(t, "tcp", ts.addr, name, qtype, mods...)
}

func queryAt(t testing.TB, network, addr, name string, qtype uint16, mods ...func(*mdns.Msg)) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	m.RecursionDesired = false
	for _, f := range mods {
		f(m)
	}
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, mdns.TypeToString[qtype], err)
	}
	return r
}

// addrs lists the A/AAAA addresses of an answer, in order.
func addrs(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

func sortedAddrs(r *mdns.Msg) string {
	a := addrs(r)
	sortStrings(a)
	return strings.Join(a, ",")
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// udpListener is a one-socket UDP responder for NOTIFY tests.
func notifyListener(t testing.TB) (addr netip.AddrPort, got <-chan *mdns.Msg) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *mdns.Msg, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(mdns.Msg)
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			select {
			case ch <- m:
			default:
			}
			r := new(mdns.Msg).SetReply(m)
			b, _ := r.Pack()
			pc.WriteTo(b, from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), ch
}
