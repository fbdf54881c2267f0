package bfd

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakePorts stands in for Run with what matters to the manager: a
// session holds its peer's receive slot from start until a moment after
// its context ends (the AdminDown it sends, the socket it closes), and a
// second session to a held peer fails at once, as subscribe does.
type fakePorts struct {
	mu       sync.Mutex
	held     map[netip.Addr]bool
	starts   int
	clashes  int // runs refused because the peer was still held
	failures int // the next runs that fail at once
	release  time.Duration
	notify   func(Event)
	startedC chan struct{}
	kill     chan error // ends the running session with an error
}

func newFakePorts() *fakePorts {
	return &fakePorts{held: map[netip.Addr]bool{}, release: 30 * time.Millisecond, startedC: make(chan struct{}, 64), kill: make(chan error)}
}

func (f *fakePorts) run(ctx context.Context, p Peer, notify func(Event), _ *slog.Logger) error {
	f.mu.Lock()
	f.starts++
	if f.failures > 0 {
		f.failures--
		f.mu.Unlock()
		f.startedC <- struct{}{}
		return errors.New("listen: no such device")
	}
	if f.held[p.Remote] {
		f.clashes++
		f.mu.Unlock()
		f.startedC <- struct{}{}
		return errors.New("a session to " + p.Remote.String() + " already runs")
	}
	f.held[p.Remote] = true
	f.notify = notify
	f.mu.Unlock()
	f.startedC <- struct{}{}
	var err error
	select {
	case <-ctx.Done():
		time.Sleep(f.release)
	case err = <-f.kill:
	}
	f.mu.Lock()
	delete(f.held, p.Remote)
	f.mu.Unlock()
	return err
}

func (f *fakePorts) send(e Event) {
	f.mu.Lock()
	n := f.notify
	f.mu.Unlock()
	n(e)
}

func (f *fakePorts) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

func testPeer() Peer {
	return Peer{Interface: "wan1", Remote: netip.MustParseAddr("198.51.100.1"), Config: Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}}
}

func waitStart(t *testing.T, f *fakePorts) {
	t.Helper()
	select {
	case <-f.startedC:
	case <-time.After(5 * time.Second):
		t.Fatal("session not started")
	}
}

// TestManagerShares: one session per peer whoever asks; the last Close
// stops it; a client asking for other timers while it runs waits, gets
// no event of it, and gets its own session once the last Close stopped
// it (a reload changing the timers of both clients of a shared session).
func TestManagerShares(t *testing.T) {
	f := newFakePorts()
	m := NewManager(slog.New(slog.DiscardHandler), ManagerOptions{Run: f.run})
	var mu sync.Mutex
	got := map[string]int{}
	remote := map[string]netip.Addr{}
	note := func(who string) func(Event) {
		return func(e Event) { mu.Lock(); got[who]++; remote[who] = e.Remote; mu.Unlock() }
	}
	link, err := m.Open(testPeer(), note("link"))
	if err != nil {
		t.Fatal(err)
	}
	waitStart(t, f)
	p := testPeer()
	p.Remote = netip.MustParseAddr("198.51.100.1").WithZone("wan1") // the same peer
	nb, err := m.Open(p, note("neighbor"))
	if err != nil {
		t.Fatal(err)
	}
	other := testPeer()
	other.DetectMult = 5
	wait, err := m.Open(other, note("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer wait.Close()
	f.send(Event{Time: time.Now(), From: Down, To: Up})
	mu.Lock()
	if got["link"] != 1 || got["neighbor"] != 1 || got["other"] != 0 {
		t.Errorf("events delivered: %v", got)
	}
	// Each client sees the peer as it named it.
	if remote["link"] != testPeer().Remote || remote["neighbor"] != p.Remote {
		t.Errorf("events' peers: %v", remote)
	}
	mu.Unlock()
	if n := f.count(); n != 1 || m.Sessions() != 1 {
		t.Fatalf("%d runs, %d sessions for one peer", n, m.Sessions())
	}
	if nb.State() != Up {
		t.Errorf("state %s", nb.State())
	}
	link.Close()
	f.send(Event{Time: time.Now(), From: Up, To: Down})
	mu.Lock()
	if got["link"] != 1 || got["neighbor"] != 2 {
		t.Errorf("after one Close: %v", got)
	}
	mu.Unlock()
	nb.Close()
	nb.Close() // idempotent
	if m.Sessions() != 1 {
		t.Errorf("after the last Close: %d sessions (want the waiting client's)", m.Sessions())
	}
	waitStart(t, f)
	f.mu.Lock()
	clashes := f.clashes
	f.mu.Unlock()
	if clashes != 0 {
		t.Errorf("the waiting client's session started before the old one released the peer (%d clashes)", clashes)
	}
	f.send(Event{Time: time.Now(), From: Down, To: Up})
	mu.Lock()
	if got["other"] != 1 || got["neighbor"] != 2 {
		t.Errorf("after the waiting client's session started: %v", got)
	}
	mu.Unlock()
	if wait.State() != Up || f.count() != 2 {
		t.Errorf("waiting client: state %s, %d runs", wait.State(), f.count())
	}
	wait.Close()
	if m.Sessions() != 0 {
		t.Errorf("%d sessions after every Close", m.Sessions())
	}
}

// TestManagerWaitingClose: a waiting client that closes before the
// running session stops gets no session.
func TestManagerWaitingClose(t *testing.T) {
	f := newFakePorts()
	m := NewManager(slog.New(slog.DiscardHandler), ManagerOptions{Run: f.run})
	a, err := m.Open(testPeer(), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitStart(t, f)
	other := testPeer()
	other.RequiredMinRx = time.Second
	w, err := m.Open(other, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if w.State() != Down {
		t.Errorf("waiting client's state %s", w.State())
	}
	w.Close()
	a.Close()
	if m.Sessions() != 0 || f.count() != 1 {
		t.Errorf("%d sessions, %d runs after both closed", m.Sessions(), f.count())
	}
}

// TestManagerReopen is the reload that re-creates a neighbour: its old
// session is closed and a new one to the same peer asked for at once.
// The new one must run (not fail because the old one still holds the
// peer's socket, which left BFD silently off before the manager).
func TestManagerReopen(t *testing.T) {
	f := newFakePorts()
	f.release = 100 * time.Millisecond
	m := NewManager(slog.New(slog.DiscardHandler), ManagerOptions{Run: f.run, MinRetry: time.Hour})
	a, err := m.Open(testPeer(), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	waitStart(t, f)
	// Close from another goroutine, as another client's reload would,
	// and open at once.
	go a.Close()
	time.Sleep(5 * time.Millisecond)
	b, err := m.Open(testPeer(), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitStart(t, f)
	time.Sleep(2 * f.release)
	f.mu.Lock()
	held, clashes := f.held[testPeer().Remote], f.clashes
	f.mu.Unlock()
	if !held || clashes > 0 {
		t.Fatal("the new session failed: it started before the old one released the peer (retry is an hour away)")
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
}

// TestManagerRetry: a session whose runner fails is retried with a
// back-off that doubles up to MaxRetry (neighbour BFD was never retried
// before the manager); a session that was Up reports Down with the error.
func TestManagerRetry(t *testing.T) {
	f := newFakePorts()
	f.failures = 4
	m := NewManager(slog.New(slog.DiscardHandler), ManagerOptions{Run: f.run, MinRetry: 20 * time.Millisecond, MaxRetry: 80 * time.Millisecond})
	var times []time.Time
	var mu sync.Mutex
	var events []Event
	s, err := m.Open(testPeer(), func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 5 {
		waitStart(t, f)
		times = append(times, time.Now())
	}
	for i, want := range []time.Duration{20, 40, 80, 80} {
		if d := times[i+1].Sub(times[i]); d < want*time.Millisecond {
			t.Errorf("retry %d after %v, want at least %v ms", i+1, d, want)
		}
	}
	f.mu.Lock()
	running := f.held[testPeer().Remote]
	f.mu.Unlock()
	if !running {
		t.Fatal("not running after the failures")
	}
	// Up, then the runner fails: clients see Down with the error, not a
	// path verdict.
	f.send(Event{Time: time.Now(), From: Init, To: Up})
	f.kill <- errors.New("read: network is down")
	waitStart(t, f) // retried
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[1].To != Down || events[1].Err == nil || events[1].Verdict(0) != Unproven {
		t.Fatalf("events %+v", events)
	}
}

// TestVerdict: what clients make of state changes (RFC 5882 section 3.2
// for AdminDown, the hold-up for short-lived sessions).
func TestVerdict(t *testing.T) {
	hold := 5 * time.Second
	for _, c := range []struct {
		name string
		e    Event
		want Verdict
	}{
		{"up", Event{From: Init, To: Up}, SessionUp},
		{"down to init", Event{From: Down, To: Init}, Ignore},
		{"init to down", Event{From: Init, To: Down, Diag: DiagDetectExpired}, Ignore},
		{"detection expired after the hold-up", Event{From: Up, To: Down, Diag: DiagDetectExpired, RemoteState: Up, UpFor: time.Minute}, PathDown},
		{"neighbour lost us after the hold-up", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, RemoteDiag: DiagDetectExpired, UpFor: hold}, PathDown},
		{"neighbour's path down", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, RemoteDiag: DiagPathDown, UpFor: time.Hour}, PathDown},
		{"neighbour restarted its BFD (diag 3)", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, RemoteDiag: DiagNeighborDown, UpFor: time.Hour}, PeerReset},
		{"neighbour restarted its BFD (diag 0)", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, UpFor: time.Hour}, PeerReset},
		{"neighbour down within the hold-up (FRR 8.4 after BGP)", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, UpFor: 2 * time.Second}, Unproven},
		{"detection expired within the hold-up", Event{From: Up, To: Down, Diag: DiagDetectExpired, RemoteState: Up, UpFor: time.Second}, Unproven},
		{"peer admin down", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: AdminDown, UpFor: time.Hour}, PeerAdminDown},
		{"peer down with diag admin down", Event{From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down, RemoteDiag: DiagAdminDown, UpFor: time.Hour}, PeerAdminDown},
		{"runner failed", Event{From: Up, To: Down, Err: errors.New("read: network is down"), UpFor: time.Hour}, Unproven},
	} {
		if got := c.e.Verdict(hold); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := (Event{From: Up, To: Down, Diag: DiagDetectExpired, RemoteState: Up}).Verdict(0); got != PathDown {
		t.Errorf("hold-up 0: %s, want path down", got)
	}
}

// TestManagerUpFor: the manager stamps how long a session had been Up.
func TestManagerUpFor(t *testing.T) {
	f := newFakePorts()
	m := NewManager(slog.New(slog.DiscardHandler), ManagerOptions{Run: f.run})
	var got Event
	s, err := m.Open(testPeer(), func(e Event) { got = e })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitStart(t, f)
	t0 := time.Now()
	f.send(Event{Time: t0, From: Init, To: Up})
	f.send(Event{Time: t0.Add(3 * time.Second), From: Up, To: Down, Diag: DiagNeighborDown, RemoteState: Down})
	if got.UpFor != 3*time.Second {
		t.Errorf("UpFor %v, want 3s", got.UpFor)
	}
}
