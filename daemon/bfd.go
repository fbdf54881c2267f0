package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/bfd"
	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// Link-level BFD (links[].bfd, docs/bfd.md) always runs: with no link
// asking for it, it idles, so that a reload that gives a link a bfd block
// starts its session without a restart. Its sessions come from the
// daemon's BFD manager, shared with the BGP neighbours' (bfdManager).
func init() {
	builders = append(builders, builder{"bfd", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		b := newLinkBFD(cfg, src, bfdManager(src, log), log.With("subsystem", "bfd"))
		for _, c := range b.collectors() {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
		return b, nil
	}})
}

// bfdManagers holds one BFD manager per daemon, found by the daemon's
// monitor: the one thing every builder is given. Link BFD and the BGP
// speaker ask it for their sessions, so that one peer has one session
// whoever asks.
var (
	bfdManagersMu sync.Mutex
	bfdManagers   = map[monitor.Source]*bfd.Manager{}
)

// bfdManager returns the BFD manager of the daemon whose monitor is src.
func bfdManager(src monitor.Source, log *slog.Logger) *bfd.Manager {
	bfdManagersMu.Lock()
	defer bfdManagersMu.Unlock()
	m := bfdManagers[src]
	if m == nil {
		m = bfd.NewManager(log.With("subsystem", "bfd"), bfd.ManagerOptions{})
		bfdManagers[src] = m
	}
	return m
}

// evidence is what the monitor offers other subsystems to take a link
// down at once ((*monitor.Monitor).Evidence).
type evidence interface {
	Evidence(link string, up bool, reason string)
}

// bfdSpec is everything a link's session is built from: a session whose
// spec changes on reload is restarted, the others keep running.
type bfdSpec struct {
	iface       string
	peer, local netip.Addr
	cfg         bfd.Config
	holdUp      time.Duration
}

func specOf(l config.Link) bfdSpec {
	f := l.BFD
	return bfdSpec{iface: l.Interface, peer: f.Peer, local: f.Local, cfg: bfd.Config{
		DesiredMinTx: f.MinTx.D(), RequiredMinRx: f.MinRx.D(), DetectMult: uint8(f.Multiplier),
	}, holdUp: f.HoldUpD()}
}

// linkSpecs returns the BFD session of every link that has one, by link.
func linkSpecs(cfg *config.Config) map[string]bfdSpec {
	out := map[string]bfdSpec{}
	for _, l := range cfg.Links {
		if l.BFD != nil {
			out[l.Name] = specOf(l)
		}
	}
	return out
}

// linkBFD runs one BFD session per link with a bfd block and turns a
// session that goes down into link evidence. Its Run goroutine owns the
// sessions; Update hands it new configs.
type linkBFD struct {
	log     *slog.Logger
	src     monitor.Source
	cfg     *config.Config
	updates chan bfdUpdate
	// stopped is closed when Run returns (Update fails at once after).
	stopped chan struct{}
	events  chan bfdEvent
	mgr     *bfd.Manager
	// record, when set (logBFDDecisions, before Run), is given every
	// down of a session and what the link monitor was told, for the
	// decision log.
	record func(api.Entry)

	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	unproven    *prometheus.CounterVec
}

type bfdUpdate struct {
	cfg  *config.Config
	done chan error
}

// bfdEvent is a session's state change, tagged with the session it
// came from so that late events of a stopped session are ignored.
type bfdEvent struct {
	link string
	sess *bfdSession
	ev   bfd.Event
}

type bfdSession struct {
	link  string
	spec  bfdSpec
	state bfd.State
	stop  context.CancelFunc
	sub   *bfd.Sub // nil while the manager refuses the session
}

var bfdStates = []bfd.State{bfd.AdminDown, bfd.Down, bfd.Init, bfd.Up}

func newLinkBFD(cfg *config.Config, src monitor.Source, mgr *bfd.Manager, log *slog.Logger) *linkBFD {
	return &linkBFD{
		log: log, src: src, cfg: cfg, mgr: mgr,
		updates: make(chan bfdUpdate),
		stopped: make(chan struct{}),
		events:  make(chan bfdEvent, 64),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "multihome_bfd_session_state",
			Help: "1 for the state of the link's BFD session (admindown, down, init, up), 0 for the others.",
		}, []string{"link", "peer", "state"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multihome_bfd_session_transitions_total",
			Help: "State changes of the link's BFD session since the daemon started, by state entered.",
		}, []string{"link", "peer", "to"}),
		unproven: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "multihome_bfd_unproven_downs_total",
			Help: "Downs of the link's BFD session that did not take the link down: the session had been up for less than its hold-up, or its runner failed (the probes decide).",
		}, []string{"link", "peer"}),
	}
}

func (b *linkBFD) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.state, b.transitions, b.unproven}
}

// Update applies a reloaded config: sessions whose link, peer, address or
// timers changed restart, new ones start, removed ones stop (sending
// AdminDown to the peer). It returns once applied.
func (b *linkBFD) Update(cfg *config.Config) error {
	done := make(chan error, 1)
	return bound.Handoff(b.updates, bfdUpdate{cfg, done}, done, b.stopped, 10*time.Second)
}

// Run runs the sessions until ctx ends, then stops them all (each sends
// AdminDown so its peer does not wait out its detection time).
func (b *linkBFD) Run(ctx context.Context) error {
	defer close(b.stopped)
	sessions := map[string]*bfdSession{}
	defer func() {
		for _, s := range sessions {
			b.stopSession(s)
		}
		// The daemon stops: its manager is not looked up again.
		bfdManagersMu.Lock()
		if bfdManagers[b.src] == b.mgr {
			delete(bfdManagers, b.src)
		}
		bfdManagersMu.Unlock()
	}()
	b.apply(ctx, sessions, linkSpecs(b.cfg))
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-b.updates:
			b.cfg = u.cfg
			b.apply(ctx, sessions, linkSpecs(u.cfg))
			u.done <- nil
		case e := <-b.events:
			if s := sessions[e.link]; s == e.sess {
				b.handle(s, e.ev)
			}
		}
	}
}

// apply makes the running sessions those of want. A change of hold-up
// only applies to the next down: the session keeps running.
func (b *linkBFD) apply(ctx context.Context, sessions map[string]*bfdSession, want map[string]bfdSpec) {
	for link, s := range sessions {
		w, ok := want[link]
		if same := s.spec; ok && w.holdUp != same.holdUp {
			if same.holdUp = w.holdUp; same == w {
				s.spec = w
				b.log.Info("bfd hold-up changed", "link", link, "peer", s.spec.peer, "hold_up", w.holdUp)
			}
		}
		if !ok || w != s.spec {
			b.stopSession(s)
			delete(sessions, link)
			b.log.Info("bfd session stopped", "link", link, "peer", s.spec.peer, "changed", ok)
		}
	}
	for link, w := range want {
		if sessions[link] == nil {
			sessions[link] = b.startSession(ctx, link, w)
		}
	}
}

func (b *linkBFD) startSession(ctx context.Context, link string, spec bfdSpec) *bfdSession {
	ctx, cancel := context.WithCancel(ctx)
	s := &bfdSession{link: link, spec: spec, state: bfd.Down, stop: cancel}
	log := b.log.With("link", link, "peer", spec.peer)
	p := bfd.Peer{Interface: spec.iface, Local: spec.local, Remote: spec.peer, Config: spec.cfg}
	sub, err := b.mgr.Open(p, func(e bfd.Event) {
		select {
		case b.events <- bfdEvent{link, s, e}:
		case <-ctx.Done():
		}
	})
	if err != nil {
		log.Error("bfd session refused", "err", err)
		return s
	}
	s.sub = sub
	s.state = sub.State()
	b.setState(s)
	log.Info("bfd session started", "interface", spec.iface, "min_tx", spec.cfg.DesiredMinTx, "min_rx", spec.cfg.RequiredMinRx,
		"multiplier", spec.cfg.DetectMult, "hold_up", spec.holdUp)
	return s
}

// stopSession ends a session; the manager stops it (AdminDown to the
// peer, sockets closed) unless another client still uses it, before a
// restarted session to the same peer starts.
func (b *linkBFD) stopSession(s *bfdSession) {
	s.stop()
	if s.sub != nil {
		s.sub.Close()
	}
	for _, st := range bfdStates {
		b.state.DeleteLabelValues(s.link, s.spec.peer.String(), st.String())
	}
}

func (b *linkBFD) setState(s *bfdSession) {
	for _, st := range bfdStates {
		v := 0.0
		if st == s.state {
			v = 1
		}
		b.state.WithLabelValues(s.link, s.spec.peer.String(), st.String()).Set(v)
	}
}

// handle applies one state change (bfd.Event.Verdict): a session that
// leaves Up after having been Up for its hold-up takes its link down at
// once; a peer's AdminDown (RFC 5882 section 3.2: a deliberate shutdown
// is not a path failure), a peer's reset (it signals Down without saying
// it lost us) and an unproven down (up for less than the hold-up, or a
// failed runner) leave the link to its probes. Up changes
// nothing: the probes bring the link back.
func (b *linkBFD) handle(s *bfdSession, e bfd.Event) {
	s.state = e.To
	b.setState(s)
	b.transitions.WithLabelValues(s.link, s.spec.peer.String(), e.To.String()).Inc()
	reason := fmt.Sprintf("BFD %s→%s: %s (peer %s)", e.From, e.To, e.Diag, e.Remote)
	if e.Err != nil {
		reason = fmt.Sprintf("BFD %s→%s: session failed: %v (peer %s)", e.From, e.To, e.Err, e.Remote)
	}
	v := e.Verdict(s.spec.holdUp)
	if b.record != nil && v != bfd.SessionUp && v != bfd.Ignore {
		// Before acting: the link's state is the one the verdict found.
		b.record(api.Entry{Time: e.Time, Kind: "bfd", Link: s.link, From: e.From.String(), To: e.To.String(),
			Reason: reason + ": " + bfdDecision(e, v, s.spec.holdUp, "link "+s.link, monitor.StateOf(b.src, s.link))})
	}
	switch v {
	case bfd.PeerAdminDown:
		b.log.Warn("bfd session down: the peer is administratively down, the link stays to its probes", "link", s.link, "peer", e.Remote, "reason", reason)
	case bfd.PeerReset:
		b.unproven.WithLabelValues(s.link, s.spec.peer.String()).Inc()
		b.log.Warn("bfd session reset by the peer (it did not say it lost us): the link stays to its probes", "link", s.link, "peer", e.Remote,
			"reason", reason, "peer_diag", e.RemoteDiag)
	case bfd.Unproven:
		b.unproven.WithLabelValues(s.link, s.spec.peer.String()).Inc()
		b.log.Warn("bfd session down within its hold-up: the link stays to its probes", "link", s.link, "peer", e.Remote,
			"reason", reason, "up_for", e.UpFor.Round(time.Millisecond), "hold_up", s.spec.holdUp)
	case bfd.PathDown:
		b.log.Warn("bfd session down", "link", s.link, "peer", e.Remote, "reason", reason, "up_for", e.UpFor.Round(time.Millisecond))
		if ev, ok := b.src.(evidence); ok {
			ev.Evidence(s.link, false, reason)
		}
	case bfd.SessionUp:
		b.log.Info("bfd session up", "link", s.link, "peer", e.Remote)
	default:
		b.log.Debug("bfd session state", "link", s.link, "peer", e.Remote, "from", e.From, "to", e.To, "diag", e.Diag)
	}
}

// bfdDecision says, for the decision log, what a BFD down's verdict v
// made of it for who (a link), whose state was state ("" if unknown):
// taken down at once, or left to its probes.
func bfdDecision(e bfd.Event, v bfd.Verdict, holdUp time.Duration, who, state string) string {
	acted, kept := who+" taken down at once", "not acted on, "+who+" left to its probes"
	if state != "" {
		acted += " (it was " + state + ")"
		kept = "not acted on, " + who + " (" + state + ") left to its probes"
	}
	return e.Explain(v, holdUp, acted, kept)
}
