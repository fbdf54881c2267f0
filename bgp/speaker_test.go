package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// fakeSource is a monitor.Source driven by the test.
type fakeSource struct {
	mu   sync.Mutex
	st   []monitor.Status
	subs []chan monitor.Event
}

func (f *fakeSource) Subscribe() (<-chan monitor.Event, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan monitor.Event, 16)
	f.subs = append(f.subs, ch)
	return ch, func() {}
}

func (f *fakeSource) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]monitor.Status(nil), f.st...)
}

func (f *fakeSource) set(link string, s monitor.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.st {
		if f.st[i].Link == link {
			from := f.st[i].State
			f.st[i].State = s
			for _, ch := range f.subs {
				ch <- monitor.Event{Time: time.Now(), Kind: monitor.StateChanged, Link: link, From: from, To: s, Reason: "test", Status: f.st[i]}
			}
		}
	}
}

// isp is an in-process GoBGP router listening on addr:port that accepts
// everything from the speaker at 127.0.0.2.
type isp struct {
	s *server.BgpServer
}

func freePort(t *testing.T, addr string) int {
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startISP(t *testing.T, asn uint32, addr string, port int) *isp {
	s := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), nil))
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: addr, ListenPort: int32(port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: 64500},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: addr},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.StopBgp(context.Background(), &api.StopBgpRequest{}); s.Stop() })
	return &isp{s}
}

func (i *isp) lookup(prefix string) (route, bool) {
	var out route
	found := false
	p := netip.MustParsePrefix(prefix)
	fam := bgp.RF_IPv4_UC
	if p.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	i.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}, func(n bgp.NLRI, paths []*apiutil.Path) {
		if n.String() != prefix {
			return
		}
		for _, path := range paths {
			for _, a := range path.Attrs {
				switch a := a.(type) {
				case *bgp.PathAttributeAsPath:
					out.ASPath = strings.TrimSuffix(strings.TrimPrefix(a.String(), "{AsPath: "), "}")
				case *bgp.PathAttributeCommunities:
					var cs []string
					for _, c := range a.Value {
						cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
					}
					out.Communities = strings.Join(cs, " ")
				}
			}
			found = true
		}
	})
	return out, found
}

func (i *isp) established(string) bool { return true }

// negotiatedHold returns the hold time (s) of the ISP's session with us.
func (i *isp) negotiatedHold(t *testing.T) uint64 {
	var h uint64
	if err := i.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		h = p.GetTimers().GetState().GetNegotiatedHoldTime()
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSpeakerInProcess runs the speaker against two in-process GoBGP
// routers on loopback: announcements, backup prepends, communities,
// withdraw on down, restore on up, and the prepend mode.
func TestSpeakerInProcess(t *testing.T) {
	for _, mode := range []string{config.BGPWithdraw, config.BGPPrepend} {
		t.Run(mode, func(t *testing.T) {
			p1, p2 := freePort(t, "127.0.0.11"), freePort(t, "127.0.0.12")
			isp1 := startISP(t, 64501, "127.0.0.11", p1)
			isp2 := startISP(t, 64502, "127.0.0.12", p2)
			yamlText := []byte(fmt.Sprintf(`
links:
  - {name: wan1, interface: lo, gateway4: 127.0.0.11, address4: 127.0.0.2, probes: [{target: 127.0.0.1}]}
  - {name: wan2, interface: lo2, gateway4: 127.0.0.12, address4: 127.0.0.2, probes: [{target: 127.0.0.1}]}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25, 198.51.100.0/24]
  on_down: %s
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 127.0.0.11, port: %d, asn: 64501, communities: ["64501:100"]}
    - {link: wan2, address: 127.0.0.12, port: %d, asn: 64502, role: backup, hold_time: 30s}
`, mode, p1, p2))
			cfg, err := config.Parse("test.yaml", yamlText)
			if err != nil {
				t.Fatal(err)
			}
			src := &fakeSource{st: []monitor.Status{{Link: "wan1", State: monitor.Up}, {Link: "wan2", State: monitor.Up}}}
			var logs strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			sp, err := New(cfg, src, log)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sp.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
				if t.Failed() || testing.Verbose() {
					mu.Lock()
					t.Logf("log:\n%s", logs.String())
					mu.Unlock()
				}
			}()
			r1 := waitRoute(t, isp1, "isp1", "192.0.2.128/25", 10*time.Second)
			r2 := waitRoute(t, isp2, "isp2", "192.0.2.128/25", 10*time.Second)
			if r1.ASPath != "64500" || r1.Communities != "64501:100" {
				t.Errorf("isp1: %+v", r1)
			}
			if r2.ASPath != "64500 64500 64500 64500" || r2.Communities != "" {
				t.Errorf("isp2 (backup): %+v", r2)
			}
			// Timers: bgp's default hold time for isp1, the neighbour's own
			// 30s for isp2 (the ISPs offer GoBGP's 90s: the lower wins).
			if h1, h2 := isp1.negotiatedHold(t), isp2.negotiatedHold(t); h1 != 9 || h2 != 30 {
				t.Errorf("negotiated hold times: isp1 %ds isp2 %ds, want 9s and 30s", h1, h2)
			}
			src.set("wan1", monitor.Down)
			if mode == config.BGPWithdraw {
				if _, ok := pollUntil(3*time.Second, func() bool { _, ok := isp1.lookup("192.0.2.128/25"); return !ok }); !ok {
					t.Fatal("not withdrawn from isp1")
				}
			} else {
				want := strings.TrimSpace(strings.Repeat("64500 ", 7))
				if _, ok := pollUntil(3*time.Second, func() bool { r, _ := isp1.lookup("192.0.2.128/25"); return r.ASPath == want }); !ok {
					r, _ := isp1.lookup("192.0.2.128/25")
					t.Fatalf("isp1 while down: %+v, want %s", r, want)
				}
			}
			if r, ok := isp2.lookup("192.0.2.128/25"); !ok || r != r2 {
				t.Errorf("isp2 changed: %+v", r)
			}
			src.set("wan1", monitor.Up)
			if _, ok := pollUntil(3*time.Second, func() bool { r, _ := isp1.lookup("192.0.2.128/25"); return r == r1 }); !ok {
				t.Fatal("not restored at isp1")
			}
			if mode != config.BGPWithdraw {
				return
			}
			// Reload: one prefix replaced, isp1's community changed.
			text := strings.Replace(string(yamlText), "192.0.2.128/25, 198.51.100.0/24", "192.0.2.128/25, 203.0.113.0/24", 1)
			text = strings.Replace(text, `"64501:100"`, `"64501:200"`, 1)
			cfg2, err := config.Parse("test.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if err := sp.Update(cfg2); err != nil {
				t.Fatal(err)
			}
			if _, ok := pollUntil(3*time.Second, func() bool {
				_, added := isp1.lookup("203.0.113.0/24")
				_, removed := isp1.lookup("198.51.100.0/24")
				r, _ := isp1.lookup("192.0.2.128/25")
				return added && !removed && r.Communities == "64501:200"
			}); !ok {
				r, _ := isp1.lookup("192.0.2.128/25")
				t.Errorf("after reload: %+v", r)
			}
			cfg3, err := config.Parse("test.yaml", []byte(strings.Replace(text, "asn: 64500", "asn: 64499", 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := sp.Update(cfg3); err == nil || !strings.Contains(err.Error(), "needs a restart") {
				t.Errorf("ASN change: %v", err)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestSpeakerDamping: a link that flaps twice within the half-life stays
// withdrawn after it recovers, until the penalty decays below reuse.
func TestSpeakerDamping(t *testing.T) {
	// Also: the in-process ISP sends nothing back, which is logged.
	qa, qc := quietAfter, quietCheck
	quietAfter, quietCheck = 300*time.Millisecond, 100*time.Millisecond
	defer func() { quietAfter, quietCheck = qa, qc }()
	p1 := freePort(t, "127.0.0.11")
	isp1 := startISP(t, 64501, "127.0.0.11", p1)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
links:
  - {name: wan1, interface: lo, gateway4: 127.0.0.11, address4: 127.0.0.2, probes: [{target: 127.0.0.1}]}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  connect_retry: 1s
  damping: {half_life: 1s, suppress: 1500, reuse: 750}
  neighbors:
    - {link: wan1, address: 127.0.0.11, port: %d, asn: 64501}
`, p1)))
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{st: []monitor.Status{{Link: "wan1", State: monitor.Up}}}
	var logs strings.Builder
	var mu sync.Mutex
	sp, err := New(cfg, src, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		// A reload after Run returned (a SIGHUP just before the SIGTERM)
		// fails at once: it held the daemon's stop for 10 s.
		began := time.Now()
		if err := sp.Update(cfg); err == nil || time.Since(began) > time.Second {
			t.Errorf("Update after Run returned: %v after %v, want an error at once", err, time.Since(began))
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("log:\n%s", logs.String())
			mu.Unlock()
		}
	}()
	has := func() bool { _, ok := isp1.lookup("192.0.2.128/25"); return ok }
	waitRoute(t, isp1, "isp1", "192.0.2.128/25", 10*time.Second)
	// First flap: 1000 < 1500, back at once.
	src.set("wan1", monitor.Down)
	pollUntil(2*time.Second, func() bool { return !has() })
	src.set("wan1", monitor.Up)
	if _, ok := pollUntil(2*time.Second, has); !ok {
		t.Fatal("not back after one flap")
	}
	// Second flap right away: ~1900 > 1500, suppressed.
	src.set("wan1", monitor.Down)
	pollUntil(2*time.Second, func() bool { return !has() })
	up := time.Now()
	src.set("wan1", monitor.Up)
	time.Sleep(300 * time.Millisecond)
	if has() {
		t.Fatal("re-announced although suppressed")
	}
	back, ok := pollUntil(5*time.Second, has)
	if !ok {
		t.Fatal("never re-announced")
	}
	// log2(~1900/750) ≈ 1.3 s of decay.
	if d := back.Sub(up); d < 700*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("re-announced %v after recovery, want ~1.3s", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "suppressed: link flapping") || !strings.Contains(logs.String(), "no longer suppressed") {
		t.Errorf("damping not logged")
	}
	if !strings.Contains(logs.String(), "bgp session up but the neighbour sends nothing") {
		t.Errorf("quiet session not logged")
	}
}
