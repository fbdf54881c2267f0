package daemon

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/bfd"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// fakeSource records the evidence given to the monitor.
type fakeSource struct {
	mu       sync.Mutex
	evidence []string
	snap     []monitor.Status
}

func (f *fakeSource) Subscribe() (<-chan monitor.Event, func()) { return nil, func() {} }
func (f *fakeSource) Snapshot() []monitor.Status                { return f.snap }
func (f *fakeSource) Evidence(link string, up bool, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evidence = append(f.evidence, link+" "+map[bool]string{true: "up", false: "down"}[up]+": "+reason)
}

func (f *fakeSource) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.evidence...)
}

// fakeRuns stands in for bfd.Run: it records each start and stop and
// lets the test inject state changes into the running sessions.
type fakeRuns struct {
	mu      sync.Mutex
	log     []string
	notify  map[string]func(bfd.Event) // by interface
	started chan string
}

func (r *fakeRuns) run(ctx context.Context, p bfd.Peer, notify func(bfd.Event), _ *slog.Logger) error {
	r.mu.Lock()
	r.log = append(r.log, "start "+p.Interface+" "+p.Remote.String())
	r.notify[p.Interface] = func(e bfd.Event) { e.Remote = p.Remote; notify(e) }
	r.mu.Unlock()
	r.started <- p.Interface
	<-ctx.Done()
	r.mu.Lock()
	r.log = append(r.log, "stop "+p.Interface)
	r.mu.Unlock()
	return nil
}

func (r *fakeRuns) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

func (r *fakeRuns) send(iface string, from, to bfd.State, diag, remoteDiag bfd.Diag) {
	r.sendAt(time.Now(), iface, from, to, diag, remoteDiag)
}

func (r *fakeRuns) sendAt(at time.Time, iface string, from, to bfd.State, diag, remoteDiag bfd.Diag) {
	r.mu.Lock()
	n := r.notify[iface]
	r.mu.Unlock()
	// What the peer last said, as bfd.Run reports it.
	rs := to
	if remoteDiag == bfd.DiagAdminDown {
		rs = bfd.AdminDown
	}
	n(bfd.Event{Time: at, Interface: iface, From: from, To: to, Diag: diag, RemoteDiag: remoteDiag, RemoteState: rs})
}

func parseConfig(t *testing.T, y string) *config.Config {
	t.Helper()
	c, err := config.Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const bfdLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, bfd: {min_tx: 100ms, min_rx: 100ms, hold_up: 0s}}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"%s}
  - {name: isp3, interface: wan3, gateway6: "2001:db8:3::1", bfd: {}}
`

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestLinkBFD drives the link BFD subsystem with a fake session runner:
// which sessions start, which a reload restarts, what reaches the
// monitor and the metrics.
func TestLinkBFD(t *testing.T) {
	cfg := parseConfig(t, strings.Replace(bfdLinks, "%s", "", 1))
	if got := cfg.Links[2].BFD.Peer.String(); got != "2001:db8:3::1" {
		t.Fatalf("isp3's peer defaults to %s, want its gateway6", got)
	}
	src := &fakeSource{}
	runs := &fakeRuns{notify: map[string]func(bfd.Event){}, started: make(chan string, 16)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := newLinkBFD(cfg, src, bfd.NewManager(log, bfd.ManagerOptions{Run: runs.run}), log)
	reg := prometheus.NewPedanticRegistry()
	for _, c := range b.collectors() {
		reg.MustRegister(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for range 2 {
		<-runs.started
	}
	started := strings.Join(sortedCopy(runs.take()), ", ")
	if started != "start wan1 198.51.100.1, start wan3 2001:db8:3::1" {
		t.Fatalf("started %s", started)
	}

	// Init, then Up: nothing reaches the monitor; Up→Down (detection
	// time expired) does, at once.
	runs.send("wan1", bfd.Down, bfd.Init, bfd.DiagNone, bfd.DiagNone)
	runs.send("wan1", bfd.Init, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	waitFor(t, "state up", func() bool {
		return testutil.ToFloat64(b.state.WithLabelValues("isp1", "198.51.100.1", "up")) == 1
	})
	if ev := src.got(); len(ev) != 0 {
		t.Fatalf("evidence before any failure: %v", ev)
	}
	runs.send("wan1", bfd.Up, bfd.Down, bfd.DiagDetectExpired, bfd.DiagNone)
	waitFor(t, "evidence", func() bool { return len(src.got()) == 1 })
	if ev := src.got()[0]; ev != "isp1 down: BFD up→down: control detection time expired (peer 198.51.100.1)" {
		t.Errorf("evidence %q", ev)
	}
	// A peer that goes administratively down is not a path failure.
	runs.send("wan1", bfd.Down, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.send("wan1", bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.DiagAdminDown)
	waitFor(t, "transitions", func() bool {
		return testutil.ToFloat64(b.transitions.WithLabelValues("isp1", "198.51.100.1", "down")) == 2
	})
	if ev := src.got(); len(ev) != 1 {
		t.Errorf("AdminDown from the peer took the link down: %v", ev)
	}
	// Neighbour signalled Down (not AdminDown): a failure.
	runs.send("wan1", bfd.Down, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.send("wan1", bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.DiagDetectExpired)
	waitFor(t, "second evidence", func() bool { return len(src.got()) == 2 })

	want := `
# HELP multihome_bfd_session_state 1 for the state of the link's BFD session (admindown, down, init, up), 0 for the others.
# TYPE multihome_bfd_session_state gauge
multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="admindown"} 0
multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="down"} 1
multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="init"} 0
multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="up"} 0
multihome_bfd_session_state{link="isp3",peer="2001:db8:3::1",state="admindown"} 0
multihome_bfd_session_state{link="isp3",peer="2001:db8:3::1",state="down"} 1
multihome_bfd_session_state{link="isp3",peer="2001:db8:3::1",state="init"} 0
multihome_bfd_session_state{link="isp3",peer="2001:db8:3::1",state="up"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "multihome_bfd_session_state"); err != nil {
		t.Error(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Errorf("promlint: %v %v", probs, err)
	}

	// Reload: isp1's timers change (restart), isp2 gains a session on
	// its gateway4, isp3 is unchanged (keeps running).
	cfg2 := parseConfig(t, strings.Replace(strings.Replace(bfdLinks, "%s", ", bfd: {}", 1), "min_tx: 100ms, min_rx: 100ms", "min_tx: 50ms, min_rx: 50ms", 1))
	if err := b.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-runs.started
	}
	if got := strings.Join(sortedCopy(runs.take()), ", "); got != "start wan1 198.51.100.1, start wan2 198.51.100.17, stop wan1" {
		t.Errorf("reload: %s", got)
	}
	// A late event of the stopped session would be ignored; the new one
	// starts Down.
	if v := testutil.ToFloat64(b.state.WithLabelValues("isp1", "198.51.100.1", "down")); v != 1 {
		t.Errorf("restarted session not down: %v", v)
	}
	// Reload removing every bfd block stops everything and drops the
	// series.
	cfg3 := parseConfig(t, strings.ReplaceAll(strings.ReplaceAll(strings.Replace(bfdLinks, "%s", "", 1), ", bfd: {min_tx: 100ms, min_rx: 100ms, hold_up: 0s}", ""), ", bfd: {}", ""))
	if err := b.Update(cfg3); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sortedCopy(runs.take()), ", "); got != "stop wan1, stop wan2, stop wan3" {
		t.Errorf("reload without bfd: %s", got)
	}
	if n := testutil.CollectAndCount(b.state); n != 0 {
		t.Errorf("%d state series left", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A reload that comes in after Run returned (a SIGHUP just before
	// the SIGTERM) fails at once: it held the daemon's stop for 10 s.
	began := time.Now()
	if err := b.Update(cfg); err == nil || time.Since(began) > time.Second {
		t.Errorf("Update after Run returned: %v after %v, want an error at once", err, time.Since(began))
	}
}

// TestLinkBFDHoldUp: isp3's session has the default 5 s hold-up. A down
// 10 ms after up (FRR 8.4's reset after BGP comes up) and a peer's reset
// after a long up (it signals Down without saying it lost us: a restarted
// bfdd) are counted, not acted on; a detection timeout after the hold-up
// takes the link down. Each down is in the decision log with what the
// link monitor was told.
func TestLinkBFDHoldUp(t *testing.T) {
	cfg := parseConfig(t, strings.Replace(bfdLinks, "%s", "", 1))
	if h := cfg.Links[2].BFD.HoldUpD(); h != 5*time.Second {
		t.Fatalf("default hold-up %v", h)
	}
	src := &fakeSource{snap: []monitor.Status{{Link: "isp3", State: monitor.Up}}}
	runs := &fakeRuns{notify: map[string]func(bfd.Event){}, started: make(chan string, 16)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := newLinkBFD(cfg, src, bfd.NewManager(log, bfd.ManagerOptions{Run: runs.run}), log)
	var rmu sync.Mutex
	var entries []string
	b.record = func(e api.Entry) {
		rmu.Lock()
		entries = append(entries, e.Kind+" "+e.Link+" "+e.From+" -> "+e.To+": "+e.Reason)
		rmu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for range 2 {
		<-runs.started
	}
	unproven := func() float64 { return testutil.ToFloat64(b.unproven.WithLabelValues("isp3", "2001:db8:3::1")) }
	now := time.Now()
	runs.sendAt(now, "wan3", bfd.Init, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.sendAt(now.Add(10*time.Millisecond), "wan3", bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.DiagNone)
	waitFor(t, "unproven down", func() bool { return unproven() == 1 })
	runs.sendAt(now.Add(-time.Hour), "wan3", bfd.Down, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.sendAt(now, "wan3", bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.DiagNeighborDown)
	waitFor(t, "peer reset", func() bool { return unproven() == 2 })
	if ev := src.got(); len(ev) != 0 {
		t.Fatalf("evidence for downs that prove nothing: %v", ev)
	}
	runs.sendAt(now.Add(-time.Hour), "wan3", bfd.Down, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.sendAt(now, "wan3", bfd.Up, bfd.Down, bfd.DiagDetectExpired, bfd.DiagNone)
	waitFor(t, "evidence", func() bool { return len(src.got()) == 1 })
	if ev := src.got()[0]; !strings.HasPrefix(ev, "isp3 down: BFD up→down: control detection time expired") {
		t.Errorf("evidence %q", ev)
	}
	if unproven() != 2 {
		t.Errorf("unproven %v, want 2", unproven())
	}
	// The link's peer administratively down: not acted on either.
	runs.sendAt(now.Add(-time.Hour), "wan3", bfd.Down, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	runs.sendAt(now, "wan3", bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.DiagAdminDown)
	waitFor(t, "four decisions", func() bool { rmu.Lock(); defer rmu.Unlock(); return len(entries) == 4 })
	rmu.Lock()
	got := strings.Join(entries, "\n")
	rmu.Unlock()
	want := []string{
		"bfd isp3 up -> down: BFD up→down: neighbor signaled session down (peer 2001:db8:3::1): up for 10ms, less than its 5s hold-up: not acted on, link isp3 (up) left to its probes",
		`bfd isp3 up -> down: BFD up→down: neighbor signaled session down (peer 2001:db8:3::1): a peer reset (its diagnostic "neighbor signaled session down" does not say it lost us): not acted on, link isp3 (up) left to its probes`,
		"bfd isp3 up -> down: BFD up→down: control detection time expired (peer 2001:db8:3::1): path down after 1h0m0s up: link isp3 taken down at once (it was up)",
		"bfd isp3 up -> down: BFD up→down: neighbor signaled session down (peer 2001:db8:3::1): the peer is administratively down (RFC 5882: not a path failure): not acted on, link isp3 (up) left to its probes",
	}
	if got != strings.Join(want, "\n") {
		t.Errorf("decision log:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

// TestLinkBFDShared: a reload changing only isp1's hold-up keeps its
// session running. Then the session is shared with another client of
// the manager (a BGP neighbour to the same peer): a reload removing or
// changing the link's
// session leaves it to the neighbour; a reload giving both new timers
// (the link first, then the neighbour, as the daemon applies them) ends
// with one session at the new timers serving both.
func TestLinkBFDShared(t *testing.T) {
	cfg := parseConfig(t, strings.Replace(bfdLinks, "%s", "", 1))
	src := &fakeSource{}
	runs := &fakeRuns{notify: map[string]func(bfd.Event){}, started: make(chan string, 16)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr := bfd.NewManager(log, bfd.ManagerOptions{Run: runs.run})
	b := newLinkBFD(cfg, src, mgr, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for range 2 {
		<-runs.started
	}
	runs.take()
	linkState := func(s string) float64 { return testutil.ToFloat64(b.state.WithLabelValues("isp1", "198.51.100.1", s)) }
	runs.send("wan1", bfd.Init, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	waitFor(t, "isp1 up", func() bool { return linkState("up") == 1 })
	// Only the hold-up changes (isp1's session is not shared yet):
	// nothing restarts, no AdminDown to the peer.
	if err := b.Update(parseConfig(t, strings.Replace(strings.Replace(bfdLinks, "%s", "", 1), "hold_up: 0s", "hold_up: 2s", 1))); err != nil {
		t.Fatal(err)
	}
	if got := runs.take(); len(got) != 0 || linkState("up") != 1 {
		t.Errorf("a hold-up change restarted sessions: %v, up %v", got, linkState("up"))
	}
	peer := func(tx time.Duration) bfd.Peer {
		return bfd.Peer{Interface: "wan1", Remote: cfg.Links[0].BFD.Peer, Config: bfd.Config{DesiredMinTx: tx, RequiredMinRx: tx, DetectMult: 3}}
	}
	var nmu sync.Mutex
	var nbEvents int
	nb, err := mgr.Open(peer(100*time.Millisecond), func(bfd.Event) { nmu.Lock(); nbEvents++; nmu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if mgr.Sessions() != 2 {
		t.Fatalf("%d sessions: the neighbour did not join isp1's", mgr.Sessions())
	}

	// The link's bfd removed: the neighbour's session runs on.
	noBFD := strings.Replace(strings.Replace(bfdLinks, "%s", "", 1), ", bfd: {min_tx: 100ms, min_rx: 100ms, hold_up: 0s}", "", 1)
	if err := b.Update(parseConfig(t, noBFD)); err != nil {
		t.Fatal(err)
	}
	if got := runs.take(); len(got) != 0 || nb.State() != bfd.Up {
		t.Errorf("removing the link's bfd stopped the neighbour's session: %v, %s", got, nb.State())
	}
	// Back, joining the running session (up at once).
	if err := b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := runs.take(); len(got) != 0 || linkState("up") != 1 {
		t.Errorf("the link's bfd back: %v, up %v", got, linkState("up"))
	}
	// Both go to 50 ms: the link first (it waits, down), then the
	// neighbour (the old session stops, one new one serves both).
	if err := b.Update(parseConfig(t, strings.Replace(strings.Replace(bfdLinks, "%s", "", 1), "min_tx: 100ms, min_rx: 100ms", "min_tx: 50ms, min_rx: 50ms", 1))); err != nil {
		t.Fatal(err)
	}
	if got := runs.take(); len(got) != 0 || linkState("down") != 1 {
		t.Errorf("the link's new timers: %v, down %v", got, linkState("down"))
	}
	nb.Close()
	nb, err = mgr.Open(peer(50*time.Millisecond), func(bfd.Event) { nmu.Lock(); nbEvents++; nmu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	if got := <-runs.started; got != "wan1" {
		t.Fatalf("started %s", got)
	}
	if got := strings.Join(runs.take(), ", "); got != "stop wan1, start wan1 198.51.100.1" {
		t.Errorf("after the neighbour's new timers: %s", got)
	}
	if mgr.Sessions() != 2 {
		t.Errorf("%d sessions, want isp1's (shared) and isp3's", mgr.Sessions())
	}
	runs.send("wan1", bfd.Init, bfd.Up, bfd.DiagNone, bfd.DiagNone)
	waitFor(t, "isp1 up on the new session", func() bool { return linkState("up") == 1 })
	if nb.State() != bfd.Up {
		t.Errorf("neighbour's state %s", nb.State())
	}
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// FuzzLinkBFDConfig: whatever config passes validation gives every link
// bfd block a usable session: a peer, intervals a BFD packet can carry,
// a multiplier of 1..255, and a local address of the peer's family.
func FuzzLinkBFDConfig(f *testing.F) {
	f.Add([]byte(strings.Replace(bfdLinks, "%s", ", bfd: {peer: \"fe80::1%wan2\", min_tx: 10ms, multiplier: 1}", 1)))
	f.Add([]byte("links: [{name: a, interface: b, gateway6: \"2001:db8::1\", address6: \"2001:db8::2\", bfd: {multiplier: 255}}]"))
	f.Add([]byte("links: [{name: a, interface: b, probes: [{target: 192.0.2.1}], bfd: {peer: 192.0.2.1, local: 192.0.2.2, min_rx: 1h}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse("fuzz.yaml", b)
		if err != nil {
			return
		}
		for name, s := range linkSpecs(c) {
			if !s.peer.IsValid() || s.peer.IsUnspecified() || s.peer.IsMulticast() || s.cfg.DetectMult == 0 ||
				s.cfg.DesiredMinTx < time.Millisecond || s.cfg.RequiredMinRx < time.Millisecond ||
				s.cfg.DesiredMinTx/time.Microsecond > 1<<32-1 || s.cfg.RequiredMinRx/time.Microsecond > 1<<32-1 {
				t.Fatalf("link %s: accepted session %+v", name, s)
			}
			if s.local.IsValid() && s.local.Is4() != s.peer.Is4() {
				t.Fatalf("link %s: local %s and peer %s of different families", name, s.local, s.peer)
			}
		}
	})
}
