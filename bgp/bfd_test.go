package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/bfd"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// fakeBFD stands in for bfd.Run under the speaker's BFD manager: a
// session holds its peer from start until a moment after it is stopped
// (as the real one holds port 3784 while it sends AdminDown), a second
// session to a held peer fails, and the test injects state changes.
type fakeBFD struct {
	mu      sync.Mutex
	held    bool
	starts  int
	clashes int
	fail    int // the next runs that fail at once
	notify  func(bfd.Event)
	started chan struct{}
}

func (f *fakeBFD) run(ctx context.Context, p bfd.Peer, notify func(bfd.Event), _ *slog.Logger) error {
	f.mu.Lock()
	f.starts++
	switch {
	case f.fail > 0:
		f.fail--
		f.mu.Unlock()
		return errors.New("bfd listen: no such device")
	case f.held:
		f.clashes++
		f.mu.Unlock()
		return fmt.Errorf("bfd: a session to %s on %q already runs", p.Remote, p.Interface)
	}
	f.held, f.notify = true, notify
	f.mu.Unlock()
	f.started <- struct{}{}
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	f.held = false
	f.mu.Unlock()
	return nil
}

func (f *fakeBFD) send(from, to bfd.State, diag bfd.Diag, remote bfd.State, at time.Time) {
	f.mu.Lock()
	n := f.notify
	f.mu.Unlock()
	n(bfd.Event{Time: at, Interface: "lo", Remote: netip.MustParseAddr("127.0.0.11"), From: from, To: to, Diag: diag, RemoteState: remote})
}

// TestSpeakerBFD drives a neighbour's BFD through the speaker with a
// fake session: the runner is retried after failing; a down within the
// hold-up (FRR 8.4 resetting BFD right after BGP comes up) and a peer's
// AdminDown keep the announcement and the link; a down after the
// hold-up withdraws and tells the monitor; a reload that re-creates the
// neighbour gets its BFD session back.
func TestSpeakerBFD(t *testing.T) {
	p1 := freePort(t, "127.0.0.11")
	isp1 := startISP(t, 64501, "127.0.0.11", p1)
	text := fmt.Sprintf(`
links:
  - {name: wan1, interface: lo, gateway4: 127.0.0.11, address4: 127.0.0.2, probes: [{target: 127.0.0.1}]}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  connect_retry: 1s
  damping: {disable: true}
  neighbors:
    - {link: wan1, address: 127.0.0.11, port: %d, asn: 64501, bfd: {hold_up: 2s}}
`, p1)
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	src := &evidenceSource{fakeSource: fakeSource{st: []monitor.Status{{Link: "wan1", State: monitor.Up}}}}
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	sp, err := New(cfg, src, log)
	if err != nil {
		t.Fatal(err)
	}
	var dmu sync.Mutex
	var decisions []string
	sp.OnDecision(func(d Decision) {
		dmu.Lock()
		kind := ""
		if d.BFD {
			kind = "bfd "
		}
		decisions = append(decisions, kind+d.Neighbor.String()+" "+d.Link+" "+d.From+" -> "+d.To+": "+d.Reason)
		dmu.Unlock()
	})
	f := &fakeBFD{fail: 2, started: make(chan struct{}, 8)}
	sp.UseBFD(bfd.NewManager(log, bfd.ManagerOptions{Run: f.run, MinRetry: 10 * time.Millisecond, MaxRetry: 40 * time.Millisecond}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("log:\n%s", logs.String())
			mu.Unlock()
		}
	}()
	waitStarted := func(what string) {
		t.Helper()
		select {
		case <-f.started:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: BFD session not running", what)
		}
	}
	waitStarted("after two failures")
	has := func() bool { _, ok := isp1.lookup("192.0.2.128/25"); return ok }
	waitRoute(t, isp1, "isp1", "192.0.2.128/25", 10*time.Second)
	bfdState := func() string {
		for _, n := range sp.Status() {
			return n.BFD
		}
		return ""
	}

	// Up, and 10 ms later the peer says Down: within the hold-up.
	now := time.Now()
	f.send(bfd.Init, bfd.Up, bfd.DiagNone, bfd.Up, now)
	f.send(bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.Down, now.Add(10*time.Millisecond))
	pollUntil(time.Second, func() bool { return bfdState() == "down" })
	time.Sleep(300 * time.Millisecond)
	if !has() || len(src.got()) != 0 {
		t.Fatalf("a down 10 ms after up acted on: route %v, evidence %v", has(), src.got())
	}
	// Up for an hour, then the peer is administratively down.
	f.send(bfd.Down, bfd.Up, bfd.DiagNone, bfd.Up, now.Add(-time.Hour))
	f.send(bfd.Up, bfd.Down, bfd.DiagNeighborDown, bfd.AdminDown, now)
	time.Sleep(300 * time.Millisecond)
	if !has() || len(src.got()) != 0 {
		t.Fatalf("the peer's AdminDown acted on: route %v, evidence %v", has(), src.got())
	}
	// Up for an hour, then the detection time expires: a failure.
	f.send(bfd.Down, bfd.Up, bfd.DiagNone, bfd.Up, now.Add(-time.Hour))
	f.send(bfd.Up, bfd.Down, bfd.DiagDetectExpired, bfd.Up, time.Now())
	if _, ok := pollUntil(3*time.Second, func() bool { return !has() }); !ok {
		t.Fatal("not withdrawn after a real BFD failure")
	}
	if ev := src.got(); len(ev) != 1 || !strings.HasPrefix(ev[0], "wan1 down: BFD up→down: control detection time expired") {
		t.Errorf("evidence %v", ev)
	}
	f.send(bfd.Down, bfd.Up, bfd.DiagNone, bfd.Up, time.Now())
	// The BGP session was reset: back after connect_retry.
	if _, ok := pollUntil(10*time.Second, has); !ok {
		t.Fatal("not re-announced after BFD came back")
	}

	// The decision log got the start, the withdrawal and the return,
	// with their reasons, and every BFD down with what was made of it.
	dmu.Lock()
	got := strings.Join(decisions, "\n")
	dmu.Unlock()
	for _, want := range []string{
		"127.0.0.11 wan1  -> announce: bgp started: link wan1 usable",
		"127.0.0.11 wan1 announce -> withdraw: BFD up→down: control detection time expired",
		"127.0.0.11 wan1 withdraw -> announce: BFD down→up: none",
		"bfd 127.0.0.11 wan1 up -> down: BFD up→down: neighbor signaled session down (neighbour's diagnostic: none): up for 10ms, less than its 2s hold-up: not acted on: announcements and BGP session kept, link wan1 (up) left to its probes",
		"bfd 127.0.0.11 wan1 up -> down: BFD up→down: neighbor signaled session down (neighbour's diagnostic: none): the peer is administratively down (RFC 5882: not a path failure): not acted on",
		"bfd 127.0.0.11 wan1 up -> down: BFD up→down: control detection time expired: path down after 1h0m",
		" up: announcements withdrawn, BGP reset, link wan1 taken down at once (it was up)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("decisions lack %q:\n%s", want, got)
		}
	}

	// Reload re-creating the neighbour (its hold time changed): the old
	// session is released before the new one starts.
	cfg2, err := config.Parse("test.yaml", []byte(strings.Replace(text, "asn: 64501,", "asn: 64501, hold_time: 12s,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	waitStarted("after the reload")
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	held, clashes, starts := f.held, f.clashes, f.starts
	f.mu.Unlock()
	if !held || clashes != 0 || starts != 4 {
		t.Errorf("after the reload: running %v, %d clashes, %d starts (want 4: 2 failures, first, re-created)", held, clashes, starts)
	}
	if _, ok := pollUntil(3*time.Second, func() bool { return bfdState() == "down" }); !ok {
		t.Errorf("re-created neighbour's BFD is %q", bfdState())
	}
}

// evidenceSource also records the evidence the speaker gives.
type evidenceSource struct {
	fakeSource
	emu      sync.Mutex
	evidence []string
}

func (e *evidenceSource) Evidence(link string, up bool, reason string) {
	e.emu.Lock()
	defer e.emu.Unlock()
	e.evidence = append(e.evidence, link+" "+map[bool]string{true: "up", false: "down"}[up]+": "+reason)
}

func (e *evidenceSource) got() []string {
	e.emu.Lock()
	defer e.emu.Unlock()
	return append([]string(nil), e.evidence...)
}
