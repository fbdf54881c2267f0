package monitor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/probe"
)

// fakeNet answers probes by target address; targets marked dead time out.
type fakeNet struct {
	mu    sync.Mutex
	dead  map[string]bool
	binds map[string]probe.Binding // target → last binding
}

func (f *fakeNet) setDead(target string, dead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead[target] = dead
}

func (f *fakeNet) newProber(p config.Probe, b probe.Binding) (probe.Prober, error) {
	f.mu.Lock()
	f.binds[p.Target] = b
	f.mu.Unlock()
	return &fakeProber{net: f, target: p.Target}, nil
}

type fakeProber struct {
	net    *fakeNet
	target string
}

func (p *fakeProber) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	p.net.mu.Lock()
	dead := p.net.dead[p.target]
	p.net.mu.Unlock()
	if dead {
		select {
		case <-time.After(timeout):
			return 0, probe.ErrTimeout
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 500 * time.Microsecond, nil
}
func (p *fakeProber) Target() string { return p.target }
func (p *fakeProber) Type() string   { return "icmp" }
func (p *fakeProber) Close() error   { return nil }

func fastHealth() config.Health {
	return config.Health{
		Interval:     config.Duration(30 * time.Millisecond),
		TimeoutFloor: config.Duration(20 * time.Millisecond),
		HoldDown:     config.Duration(100 * time.Millisecond),
	}
}

func twoLinks() *config.Config {
	return &config.Config{Links: []config.Link{
		{Name: "a", Interface: "wan1", Probes: []config.Probe{{Target: "203.0.113.10"}, {Target: "203.0.113.11"}}, Health: fastHealth()},
		{Name: "b", Interface: "wan2", Probes: []config.Probe{{Target: "203.0.113.12"}}, Health: fastHealth()},
	}}
}

// startFake runs a monitor with fake probers and no netlink.
func startFake(t *testing.T, cfg *config.Config) (*Monitor, *fakeNet, <-chan Event) {
	t.Helper()
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNet{dead: map[string]bool{}, binds: map[string]probe.Binding{}}
	m.newProber = f.newProber
	m.noNetlink = true
	events, cancelSub := m.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
		cancelSub()
	})
	return m, f, events
}

func waitEvent(t *testing.T, events <-chan Event, d time.Duration, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e := <-events:
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no matching event within %v", d)
		}
	}
}

func stateIs(link string, to State) func(Event) bool {
	return func(e Event) bool { return e.Kind == StateChanged && e.Link == link && e.To == to }
}

func TestMonitorLoop(t *testing.T) {
	m, f, events := startFake(t, twoLinks())
	ups := map[string]bool{}
	waitEvent(t, events, 2*time.Second, func(e Event) bool {
		if e.Kind == StateChanged && e.To == Up {
			ups[e.Link] = true
		}
		return len(ups) == 2
	})
	snap := m.Snapshot()
	if len(snap) != 2 || snap[0].Link != "a" || snap[1].Link != "b" || snap[0].State != Up {
		t.Fatalf("snapshot %+v", snap)
	}
	// Probes carry each link's interface and outbound mark.
	f.mu.Lock()
	if b := f.binds["203.0.113.10"]; b.Interface != "wan1" || b.Mark != 0x10000 {
		t.Errorf("binding of a's probes: %+v", b)
	}
	if b := f.binds["203.0.113.12"]; b.Interface != "wan2" || b.Mark != 0x20000 {
		t.Errorf("binding of b's probes: %+v", b)
	}
	f.mu.Unlock()

	// Both targets of a die: down, with the evidence in the event.
	f.setDead("203.0.113.10", true)
	f.setDead("203.0.113.11", true)
	e := waitEvent(t, events, 2*time.Second, stateIs("a", Down))
	if !strings.Contains(e.Reason, "consecutive failed probes") || e.Status.State != Down || e.From != Up {
		t.Errorf("down event %+v", e)
	}
	f.setDead("203.0.113.10", false)
	f.setDead("203.0.113.11", false)
	hd := waitEvent(t, events, 2*time.Second, func(e Event) bool { return e.Link == "a" && e.Kind == HoldDownStarted })
	if !hd.Status.HoldDown || hd.Status.State != Down {
		t.Errorf("hold-down event status %+v", hd.Status)
	}
	up := waitEvent(t, events, 2*time.Second, stateIs("a", Up))
	if d := up.Time.Sub(hd.Time); d < 100*time.Millisecond {
		t.Errorf("up %v after hold-down started, want ≥ 100ms", d)
	}

	// Admin overrides.
	if err := m.SetAdmin("b", AdminDrain, "maintenance"); err != nil {
		t.Fatal(err)
	}
	e = waitEvent(t, events, time.Second, func(e Event) bool { return e.Kind == AdminChanged })
	if e.Link != "b" || e.Status.Admin != AdminDrain || e.Status.State != Up || e.Status.AcceptsNew() {
		t.Errorf("drain event %+v", e)
	}
	if err := m.SetAdmin("b", AdminDown, "swap the modem"); err != nil {
		t.Fatal(err)
	}
	e = waitEvent(t, events, time.Second, stateIs("b", Down))
	if e.Reason != "forced down by operator: swap the modem" {
		t.Errorf("forced down reason %q", e.Reason)
	}
	if err := m.SetAdmin("b", AdminNone, ""); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, time.Second, stateIs("b", Up))
	if err := m.SetAdmin("nosuch", AdminDown, ""); err == nil {
		t.Error("SetAdmin of an unknown link succeeded")
	}

	// Reload: new thresholds, a new link, a removed one.
	cfg := twoLinks()
	cfg.Links = cfg.Links[:1]
	cfg.Links[0].Health.DownAfter = 7
	cfg.Links = append(cfg.Links, config.Link{Name: "c", Interface: "wan3", Probes: []config.Probe{{Target: "203.0.113.13"}}, Health: fastHealth()})
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 2*time.Second, stateIs("c", Up))
	snap = m.Snapshot()
	if len(snap) != 2 || snap[0].Link != "a" || snap[1].Link != "c" || snap[0].State != Up {
		t.Fatalf("snapshot after reload %+v", snap)
	}
	if err := m.Update(&config.Config{}); err == nil {
		t.Error("Update with no links succeeded")
	}
}

func TestMonitorNotRunning(t *testing.T) {
	m, err := New(twoLinks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetAdmin("a", AdminDown, ""); err == nil {
		t.Error("SetAdmin before Run succeeded")
	}
	if s := m.Snapshot(); len(s) != 2 || s[0].State != Unknown {
		t.Errorf("snapshot before Run: %+v", s)
	}
	for _, cfg := range []*config.Config{
		nil,
		{},
		{Links: []config.Link{{Name: "a"}}},
		{Links: []config.Link{{Name: "a", Interface: "x"}}},
		{Links: []config.Link{{Name: "a", Interface: "x", Probes: []config.Probe{{Target: "not an ip"}}}}},
		{Links: []config.Link{{Name: "a", Interface: "x", Probes: []config.Probe{{Target: "203.0.113.1"}}}, {Name: "a", Interface: "y", Probes: []config.Probe{{Target: "203.0.113.1"}}}}},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestCarrierOf(t *testing.T) {
	const up, lower = unix.IFF_UP, unix.IFF_LOWER_UP
	for _, tc := range []struct {
		flags uint32
		oper  netlink.LinkOperState
		want  bool
		why   string
	}{
		{up | lower, netlink.OperUp, true, ""},
		{up | lower, netlink.OperUnknown, true, ""}, // tun, dummy
		{up, netlink.OperLowerLayerDown, false, "carrier lost on wan1"},
		{up | lower, netlink.OperDown, false, "carrier lost on wan1"},
		{lower, netlink.OperDown, false, "interface wan1 is administratively down"},
	} {
		got, why := carrierOf(tc.flags, tc.oper, "wan1")
		if got != tc.want || why != tc.why {
			t.Errorf("carrierOf(%#x, %v) = %v %q, want %v %q", tc.flags, tc.oper, got, why, tc.want, tc.why)
		}
	}
}
