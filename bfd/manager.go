package bfd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// RunFunc runs one session until ctx ends (Run, or a fake in tests).
type RunFunc func(ctx context.Context, p Peer, notify func(Event), log *slog.Logger) error

// ManagerOptions tune a Manager; the zero value is the production setting.
type ManagerOptions struct {
	// Run runs a session (default Run).
	Run RunFunc
	// MinRetry and MaxRetry bound the back-off between attempts to run a
	// session whose runner failed (say, its interface does not exist
	// yet): the pause doubles from MinRetry (default 1s) up to MaxRetry
	// (default 30s), and starts again from MinRetry after a run that
	// lasted longer than MaxRetry.
	MinRetry, MaxRetry time.Duration
}

// Manager owns the process's BFD sessions: link BFD and BGP neighbour BFD
// ask it for a session to a peer, and it runs one session per interface
// and peer address whoever asks (refcounted: the last Close stops it).
// A session whose runner fails is retried with back-off; a session that
// stops releases its sockets before a new session to the same peer
// starts, so a reload that re-creates a neighbour never finds port 3784
// still held by the old one.
type Manager struct {
	log  *slog.Logger
	opts ManagerOptions

	mu       sync.Mutex
	sessions map[sessKey]*managed
	stopping map[sessKey]chan struct{} // closed when the stopped session has released its sockets
	// waiting holds, per peer, the clients that asked for other
	// parameters than the running session's: they get a session of
	// their own once that one stops (a reload that changes the timers
	// of every client of a shared session closes them one by one).
	waiting map[sessKey][]*Sub
	nextID  int
}

// sessKey identifies a session the way the receiving side demultiplexes
// them: interface and peer address (without zone).
type sessKey struct {
	iface string
	peer  netip.Addr
}

func keyOf(p Peer) sessKey { return sessKey{p.Interface, p.Remote.Unmap().WithZone("")} }

// managed is one running session and its subscribers. Its fields are
// guarded by Manager.mu.
type managed struct {
	// dmu serialises the calls to the clients' notify, so that a
	// client's Close waits for a call in progress.
	dmu     sync.Mutex
	peer    Peer
	cancel  context.CancelFunc
	done    chan struct{}
	subs    map[int]func(Event)
	state   State
	upSince time.Time // when it last entered Up
}

// NewManager returns a manager with no session.
func NewManager(log *slog.Logger, opts ManagerOptions) *Manager {
	if opts.Run == nil {
		opts.Run = Run
	}
	if opts.MinRetry <= 0 {
		opts.MinRetry = time.Second
	}
	if opts.MaxRetry < opts.MinRetry {
		opts.MaxRetry = max(30*time.Second, opts.MinRetry)
	}
	return &Manager{log: log, opts: opts, sessions: map[sessKey]*managed{}, stopping: map[sessKey]chan struct{}{}, waiting: map[sessKey][]*Sub{}}
}

// Sub is one client's hold on a session.
type Sub struct {
	m    *Manager
	key  sessKey
	s    *managed // nil while waiting (guarded by Manager.mu)
	id   int
	once sync.Once

	// peer and notify are what a waiting client asked for.
	peer   Peer
	notify func(Event)
}

// Open asks for a session to p and calls notify (from the session's
// goroutine, never concurrently for one Sub; it must not block for long)
// on each of its state changes until Close. When a session to the same
// interface and peer already runs for another client, it is shared
// (whatever each client makes of its events, e.g. its hold-up, is its
// own). A client asking for other parameters (timers, local address)
// than the running session's waits, its session Down, until every
// client of that one has closed: then its own session starts. That is
// the middle of a reload that changes the timers of a shared session
// (config requires its clients to agree); Open logs it. A client that
// joins a running session reads its state with Sub.State.
func (m *Manager) Open(p Peer, notify func(Event)) (*Sub, error) {
	if !p.Remote.IsValid() {
		return nil, fmt.Errorf("bfd: no peer address")
	}
	k := keyOf(p)
	// Each client sees the peer as it asked for it (a zone or not): a
	// shared session's events carry the first client's.
	notify = withRemote(p.Remote, notify)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	id := m.nextID
	s := m.sessions[k]
	if s != nil {
		if !sameSession(s.peer, p) {
			sub := &Sub{m: m, key: k, id: id, peer: p, notify: notify}
			m.waiting[k] = append(m.waiting[k], sub)
			m.log.Warn("bfd session to this peer already runs with other parameters: this client waits until it stops",
				"interface", p.Interface, "peer", p.Remote, "running", describe(s.peer), "asked", describe(p))
			return sub, nil
		}
		s.subs[id] = notify
		return &Sub{m: m, key: k, s: s, id: id}, nil
	}
	s = m.start(k, p)
	s.subs[id] = notify
	return &Sub{m: m, key: k, s: s, id: id}, nil
}

func withRemote(r netip.Addr, notify func(Event)) func(Event) {
	return func(e Event) { e.Remote = r; notify(e) }
}

// sameSession reports whether a and b can share one session.
func sameSession(a, b Peer) bool { return a.Config == b.Config && a.Local == b.Local }

// start starts a session to p under key k (m.mu held), after the
// stopped one to the same peer, if any, has released its sockets.
func (m *Manager) start(k sessKey, p Peer) *managed {
	ctx, cancel := context.WithCancel(context.Background())
	s := &managed{peer: p, cancel: cancel, done: make(chan struct{}), subs: map[int]func(Event){}, state: Down}
	m.sessions[k] = s
	go m.run(ctx, k, s, m.stopping[k])
	return s
}

// promote starts, once the session under k has stopped (m.mu held), a
// session for the first waiting client and every waiting client that
// asked for the same; the others wait on.
func (m *Manager) promote(k sessKey) {
	w := m.waiting[k]
	if len(w) == 0 {
		return
	}
	s := m.start(k, w[0].peer)
	var rest []*Sub
	for _, sub := range w {
		if sameSession(sub.peer, s.peer) {
			sub.s = s
			s.subs[sub.id] = sub.notify
		} else {
			rest = append(rest, sub)
		}
	}
	if len(rest) == 0 {
		delete(m.waiting, k)
	} else {
		m.waiting[k] = rest
	}
	m.log.Info("bfd session started for the clients that waited", "interface", s.peer.Interface, "peer", s.peer.Remote,
		"clients", len(s.subs), "parameters", describe(s.peer))
}

func describe(p Peer) string {
	return fmt.Sprintf("min_tx %v, min_rx %v, multiplier %d, local %v", p.DesiredMinTx, p.RequiredMinRx, p.DetectMult, p.Local)
}

// Close ends the client's hold. The last one stops the session: it sends
// AdminDown to the peer and Close returns once its sockets are released.
// Close is idempotent; no event reaches the client after it returns.
func (sub *Sub) Close() {
	sub.once.Do(func() {
		m := sub.m
		m.mu.Lock()
		s := sub.s
		if s == nil { // still waiting
			m.waiting[sub.key] = slices.DeleteFunc(m.waiting[sub.key], func(w *Sub) bool { return w == sub })
			if len(m.waiting[sub.key]) == 0 {
				delete(m.waiting, sub.key)
			}
			m.mu.Unlock()
			return
		}
		delete(s.subs, sub.id)
		if len(s.subs) > 0 {
			m.mu.Unlock()
			s.dmu.Lock() // a notify in progress may still be for us
			s.dmu.Unlock()
			return
		}
		if m.sessions[sub.key] == s {
			delete(m.sessions, sub.key)
		}
		m.stopping[sub.key] = s.done
		s.cancel()
		m.promote(sub.key)
		m.mu.Unlock()
		<-s.done
		m.mu.Lock()
		if m.stopping[sub.key] == s.done {
			delete(m.stopping, sub.key)
		}
		m.mu.Unlock()
	})
}

// State is the session's current state.
func (sub *Sub) State() State {
	sub.m.mu.Lock()
	defer sub.m.mu.Unlock()
	if sub.s == nil {
		return Down
	}
	return sub.s.state
}

// Sessions returns how many sessions run (for tests and status).
func (m *Manager) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// run runs session s until ctx ends, first waiting for a stopped
// predecessor to the same peer (prev) to release its sockets, and retries
// a failing runner with back-off.
func (m *Manager) run(ctx context.Context, k sessKey, s *managed, prev chan struct{}) {
	defer close(s.done)
	log := m.log.With("interface", k.iface, "peer", k.peer)
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			return
		}
	}
	backoff := m.opts.MinRetry
	for {
		start := time.Now()
		err := m.opts.Run(ctx, s.peer, func(e Event) { m.dispatch(s, e) }, log)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("bfd: session ended by itself")
		}
		// The session is gone: its clients see it Down, with the error.
		m.mu.Lock()
		from := s.state
		m.mu.Unlock()
		if from != Down {
			m.dispatch(s, Event{Time: time.Now(), Interface: s.peer.Interface, Remote: s.peer.Remote, From: from, To: Down, Err: err})
		}
		if time.Since(start) > m.opts.MaxRetry {
			backoff = m.opts.MinRetry
		}
		log.Error("bfd session failed: retrying", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.opts.MaxRetry)
	}
}

// dispatch records a state change (and how long the session had been
// Up) and hands it to every client.
func (m *Manager) dispatch(s *managed, e Event) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	m.mu.Lock()
	if e.From == Up && e.To != Up && !s.upSince.IsZero() {
		e.UpFor = e.Time.Sub(s.upSince)
	}
	if e.To == Up {
		s.upSince = e.Time
	} else {
		s.upSince = time.Time{}
	}
	s.state = e.To
	subs := make([]func(Event), 0, len(s.subs))
	for _, f := range s.subs {
		subs = append(subs, f)
	}
	m.mu.Unlock()
	for _, f := range subs {
		f(e)
	}
}

// Verdict is what a client makes of a state change (Event.Verdict).
type Verdict int

// Verdicts.
const (
	// Ignore: no change a client acts on (Down to Init, and the like).
	Ignore Verdict = iota
	// SessionUp: the session came up. It never brings a link up by
	// itself: the probes do.
	SessionUp
	// PathDown: the session left Up after having been Up for at least
	// the hold-up: the path failed, act at once.
	PathDown
	// PeerAdminDown: the peer shut the session down on purpose (state or
	// diagnostic AdminDown). RFC 5882 section 3.2: not a path failure;
	// clients take no action on it.
	PeerAdminDown
	// Unproven: the session left Up before it had been Up for the
	// hold-up (a peer that resets it right after coming up, as FRR 8.4's
	// bfdd does after BGP is established), or its runner failed: logged
	// and counted, the link's probes decide.
	Unproven
	// PeerReset: the peer signalled Down without saying it lost us: its
	// diagnostic is none or "neighbor signaled session down", which is
	// what a restarted BFD daemon (FRR's bfdd after a restart) or a
	// control-plane reset sends. The path carried that packet, so it is
	// not proven down: logged and counted, the link's probes decide.
	PeerReset
)

func (v Verdict) String() string {
	switch v {
	case SessionUp:
		return "up"
	case PathDown:
		return "path down"
	case PeerAdminDown:
		return "peer admin down"
	case Unproven:
		return "unproven"
	case PeerReset:
		return "peer reset"
	}
	return "ignore"
}

// Explain says, for a decision log, what verdict v (for a client with
// hold-up holdUp) made of e: on a path down, "path down after <up for>
// up: " and acted, what the client did; on the other downs why it is not
// a path failure, then kept, what the client left as it was.
func (e Event) Explain(v Verdict, holdUp time.Duration, acted, kept string) string {
	switch v {
	case PathDown:
		return fmt.Sprintf("path down after %v up: %s", e.UpFor.Round(time.Millisecond), acted)
	case PeerAdminDown:
		return "the peer is administratively down (RFC 5882: not a path failure): " + kept
	case PeerReset:
		return fmt.Sprintf("a peer reset (its diagnostic %q does not say it lost us): %s", e.RemoteDiag, kept)
	case Unproven:
		if e.Err != nil {
			return "the session's runner failed, which proves nothing about the path: " + kept
		}
		return fmt.Sprintf("up for %v, less than its %v hold-up: %s", e.UpFor.Round(time.Millisecond), holdUp, kept)
	}
	return v.String()
}

// Verdict classifies the change for a client with hold-up holdUp.
func (e Event) Verdict(holdUp time.Duration) Verdict {
	switch {
	case e.To == Up && e.From != Up:
		return SessionUp
	case e.From != Up || e.To == Up:
		return Ignore
	case e.Err != nil:
		return Unproven
	case e.Diag == DiagNeighborDown && (e.RemoteState == AdminDown || e.RemoteDiag == DiagAdminDown):
		return PeerAdminDown
	case e.UpFor < holdUp:
		return Unproven
	case e.Diag == DiagNeighborDown && (e.RemoteDiag == DiagNone || e.RemoteDiag == DiagNeighborDown):
		return PeerReset
	}
	return PathDown
}
