package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/multihome/multihome/bfd"
	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// Speaker is the embedded BGP speaker. Its Run goroutine is the only
// writer of the GoBGP server's configuration; the monitor's events,
// reloads, BFD verdicts and damping timers reach it through channels.
type Speaker struct {
	log *slog.Logger
	src monitor.Source

	updates chan update
	// stopped is closed when Run returns (Update fails at once after).
	stopped chan struct{}
	bfdEv   chan bfdEvent
	bfdMgr  *bfd.Manager
	dampC   chan struct{}
	// standbyC wakes Run when SetStandby changed standby.
	standbyC chan struct{}
	ifaces   map[string]string // link → interface
	links    map[string]linkTable
	routes   *routeManager // the daemon's (UseRoutes); nil: the imports make their own

	impMu    sync.Mutex // guards impDirty, written by GoBGP's callbacks
	impDirty map[netip.Addr]bool
	impKick  chan struct{}

	// decided, when set (OnDecision, before Run), is told every change
	// of what a neighbour is sent, for the decision log.
	decided func(Decision)

	mu  sync.Mutex // guards the fields below, read by the collector
	cfg *config.BGP
	// standby: this node is an HA pair's standby (SetStandby); Run
	// withdraws every announcement while it is set.
	standby bool
	peers   map[netip.Addr]*peerInfo
	srv     *server.BgpServer
}

type update struct {
	cfg   *config.BGP
	links map[string]linkTable
	done  chan error
}

// peerInfo is what the collector reports per neighbour.
type peerInfo struct {
	link      string
	asn       uint32
	state     bgp.FSMState
	announced bool // our prefixes are exported to it
	prepend   int
	bfd       bfd.State // AdminDown when BFD is not configured
	// bfdUnproven counts BFD downs not acted on (within the hold-up).
	bfdUnproven uint64
	quietWarn   bool // "receives nothing" logged for this establishment
	since       time.Time
	reason      string // why the session last left established, from GoBGP

	imported      int  // routes from it in its link's table
	importLimited bool // max_prefixes reached
}

// New builds a speaker for cfg.BGP (which must be set). Nothing is
// started until Run.
func New(cfg *config.Config, src monitor.Source, log *slog.Logger) (*Speaker, error) {
	if cfg.BGP == nil {
		return nil, errors.New("no bgp section")
	}
	for _, p := range cfg.BGP.LongPrefixes() {
		log.Warn("prefix longer than most networks accept: upstreams may filter it", "prefix", p,
			"limit", map[bool]string{true: "/24", false: "/48"}[p.Addr().Is4()])
	}
	ifaces := map[string]string{}
	for _, l := range cfg.Links {
		ifaces[l.Name] = l.Interface
	}
	return &Speaker{
		log: log, src: src, cfg: cfg.BGP,
		updates:  make(chan update),
		stopped:  make(chan struct{}),
		bfdEv:    make(chan bfdEvent, 16),
		bfdMgr:   bfd.NewManager(log, bfd.ManagerOptions{}),
		dampC:    make(chan struct{}, 1),
		standbyC: make(chan struct{}, 1),
		peers:    map[netip.Addr]*peerInfo{},
		ifaces:   ifaces,
		links:    linkTables(cfg),

		impDirty: map[netip.Addr]bool{},
		impKick:  make(chan struct{}, 1),
	}, nil
}

// Decision is a change of what one neighbour is sent, for the API's
// decision log (multihome events): From and To are "announce",
// "prepend N" (extra copies of our AS) or "withdraw"; From is empty when
// the speaker starts or the neighbour is added.
type Decision struct {
	Time     time.Time
	Neighbor netip.Addr
	Link     string
	From, To string
	Reason   string
	// BFD marks a down of the neighbour's BFD session instead: From and
	// To are the session's states, Reason says what was made of it
	// (acted on, or left to the link's probes and BGP's hold timer).
	BFD bool
}

// OnDecision makes the speaker call f (from its Run goroutine; f must not
// block) for every announcement decision. Call it before Run.
func (s *Speaker) OnDecision(f func(Decision)) { s.decided = f }

// action names an announcement for logs and the decision log.
func (a announce) action() string {
	switch {
	case a.Withdraw:
		return "withdraw"
	case a.Prepend > 0:
		return fmt.Sprintf("prepend %d", a.Prepend)
	}
	return "announce"
}

// UseBFD makes the speaker ask m for its neighbours' BFD sessions (the
// daemon's manager, shared with link BFD) instead of its own. Call it
// before Run.
func (s *Speaker) UseBFD(m *bfd.Manager) { s.bfdMgr = m }

// bfdEvent is a neighbour session's state change, tagged with the
// subscription it came from so that late events of a stopped one are
// ignored.
type bfdEvent struct {
	sub *bfd.Sub
	ev  bfd.Event
}

// Update applies a reloaded config: neighbours and prefixes are diffed,
// the policy is rebuilt. A change of ASN or router ID needs a restart and
// is refused (the running config stays).
func (s *Speaker) Update(cfg *config.Config) error {
	if cfg.BGP == nil {
		return errors.New("removing the bgp section needs a restart")
	}
	s.mu.Lock()
	old := s.cfg
	s.mu.Unlock()
	if cfg.BGP.ASN != old.ASN || cfg.BGP.RouterID != old.RouterID {
		return errors.New("changing bgp.asn or bgp.router_id needs a restart")
	}
	done := make(chan error, 1)
	return bound.Handoff(s.updates, update{cfg.BGP, linkTables(cfg), done}, done, s.stopped, 10*time.Second)
}

// Evidence is what a monitor.Source may also implement to take link
// evidence from other subsystems (proposed: (*monitor.Monitor).Evidence,
// treated like carrier: down at once, probes prove the link afterwards).
// When the source implements it, BFD verdicts are passed on.
type Evidence interface {
	Evidence(link string, up bool, reason string)
}

// run state, owned by Run.
type runState struct {
	srv     *server.BgpServer
	cfg     *config.BGP
	usable  map[string]bool
	drained map[string]bool     // links under an operator's drain
	bfd     map[netip.Addr]bool // BFD session down after having been up
	damp    map[netip.Addr]*damping
	healthy map[netip.Addr]bool // per neighbour: link usable and BFD not down
	dampT   *time.Timer
	bfdSubs map[netip.Addr]*bfdClient
	ann     []announce
	paths   map[netip.Prefix]uuid.UUID // prefix → GoBGP path UUID
	imp     *importState
	standby bool            // as last applied (SetStandby)
	ctx     context.Context // Run's
}

// Run starts GoBGP, the sessions and the announcements, and follows the
// monitor until ctx ends; then it stops GoBGP (sessions are closed with a
// NOTIFICATION, which withdraws everything at the neighbours).
func (s *Speaker) Run(ctx context.Context) error {
	defer close(s.stopped)
	events, unsub := s.src.Subscribe()
	defer unsub()
	srv, stop, err := s.startServer(ctx)
	if err != nil {
		return err
	}
	defer stop()
	st := s.newRunState(srv)
	st.ctx = ctx
	// Runs before stop: a clean stop leaves no imported route and sends
	// AdminDown to every BFD peer.
	defer s.teardown(st)
	if err := s.setup(ctx, st); err != nil {
		return err
	}
	return s.loop(ctx, st, events)
}

// startServer starts GoBGP with the global settings and registers the
// watches (before any peer is added, or events are missed). stop ends
// the watches and GoBGP.
func (s *Speaker) startServer(ctx context.Context) (srv *server.BgpServer, stop func(), err error) {
	// GoBGP's own logs: warnings and errors only, unless debugging.
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		lvl.Set(slog.LevelDebug)
	}
	glog := slog.New(levelHandler{s.log.Handler(), lvl}).With("gobgp", true)
	srv = server.NewBgpServer(server.LoggerOption(glog, lvl))
	go srv.Serve()
	s.mu.Lock()
	cfg := s.cfg
	s.srv = srv
	s.mu.Unlock()
	wctx, wcancel := context.WithCancel(context.Background())
	started := false
	stop = func() {
		wcancel()
		if started {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			srv.StopBgp(sctx, &api.StopBgpRequest{})
		}
		s.mu.Lock()
		s.srv = nil
		s.mu.Unlock()
	}
	listen := int32(-1)
	for _, n := range cfg.Neighbors {
		if n.Passive {
			listen = 179
		}
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: listen,
	}}); err != nil {
		stop()
		return nil, nil, fmt.Errorf("start gobgp: %w", err)
	}
	started = true
	if err := srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(e *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
			if e.Type == apiutil.PEER_EVENT_STATE {
				s.peerState(e.Peer, at)
			}
		},
		// Received updates, before the import policy: they trigger a
		// sync of the imported routes (import.go).
		OnPathUpdate: s.onPathUpdate,
	}, server.WatchPeer(), server.WatchUpdate(false, "", "")); err != nil {
		stop()
		return nil, nil, fmt.Errorf("watch gobgp peers: %w", err)
	}
	return srv, stop, nil
}

func (s *Speaker) newRunState(srv *server.BgpServer) *runState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runState{srv: srv, cfg: s.cfg, standby: s.standby, usable: map[string]bool{}, drained: map[string]bool{}, bfd: map[netip.Addr]bool{}, paths: map[netip.Prefix]uuid.UUID{},
		damp: map[netip.Addr]*damping{}, healthy: map[netip.Addr]bool{}, bfdSubs: map[netip.Addr]*bfdClient{}, imp: newImportState(s.links)}
}

// setup installs the first policy (from the links' current state), adds
// the neighbours, originates the prefixes and starts BFD.
func (s *Speaker) setup(ctx context.Context, st *runState) error {
	cfg, srv := st.cfg, st.srv
	for _, ls := range s.src.Snapshot() {
		st.usable[ls.Link] = usable(cfg, ls)
		st.drained[ls.Link] = ls.Admin == monitor.AdminDrain
	}
	st.ann = s.decisions(st)
	pr := policies(cfg, st.ann)
	if err := srv.SetPolicies(ctx, pr); err != nil {
		return fmt.Errorf("set export policy: %w", err)
	}
	// SetPolicies keeps the assignments in force: assign once, by name.
	for _, a := range pr.Assignments {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assign %s policy: %w", a.Direction, err)
		}
	}
	s.log.Info("bgp export policy", "asn", cfg.ASN, "router_id", cfg.RouterID, "policy", render(cfg, st.ann))
	for i, n := range cfg.Neighbors {
		s.decide(Decision{Time: time.Now(), Neighbor: n.Address, Link: n.Link, To: st.ann[i].action(),
			Reason: startReason(n.Link, st.usable[n.Link], st.standby)})
	}
	for i := range cfg.Neighbors {
		if err := s.addPeer(ctx, srv, cfg, i); err != nil {
			return err
		}
	}
	if err := s.syncPaths(st, cfg.Prefixes); err != nil {
		return err
	}
	warnUnrouted(s.log, cfg.Prefixes)
	for _, n := range cfg.Neighbors {
		if n.Imports() {
			s.log.Info("bgp import", importLogAttrs(n)...)
		}
	}
	// A first sync removes what a previous run may have left behind.
	s.markAllImports(st)
	s.publish(st)
	for _, n := range cfg.Neighbors {
		s.startBFD(st, n)
	}
	return nil
}

// teardown stops what setup started, GoBGP aside: BFD sessions (AdminDown
// to the peers), imported routes, the damping timer.
func (s *Speaker) teardown(st *runState) {
	for a := range st.bfdSubs {
		s.stopBFD(st, a)
	}
	s.clearImports(st)
	if st.dampT != nil {
		st.dampT.Stop()
	}
}

// loop is Run's goroutine once everything is set up: the one owner of
// the run state, fed by the monitor, BFD, damping, reloads and imports.
func (s *Speaker) loop(ctx context.Context, st *runState, events <-chan monitor.Event) error {
	quiet := time.NewTicker(quietCheck)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-quiet.C:
			s.checkQuiet(ctx, st.srv)
		case e, ok := <-events:
			if !ok {
				return errors.New("monitor event stream closed")
			}
			s.linkEvent(ctx, st, e)
		case <-s.standbyC:
			s.roleChanged(st)
		case <-s.dampC:
			s.apply(ctx, st, "flap damping: penalty decayed below reuse")
		case e := <-s.bfdEv:
			s.bfdEvent(ctx, st, e)
		case u := <-s.updates:
			err := s.reload(ctx, st, u.cfg)
			if err == nil {
				st.imp.setLinks(u.links)
				s.mu.Lock()
				s.links = u.links
				s.mu.Unlock()
			}
			s.markAllImports(st)
			u.done <- err
		case <-s.impKick:
			s.importKicked(st)
		case <-st.imp.timer.C:
			s.syncImports(st)
		}
	}
}

// linkEvent follows a monitor event: a link that becomes usable or stops
// being usable changes the announcements.
func (s *Speaker) linkEvent(ctx context.Context, st *runState, e monitor.Event) {
	if e.Kind != monitor.StateChanged && e.Kind != monitor.AdminChanged {
		return
	}
	if e.Kind == monitor.StateChanged && e.To != monitor.Down {
		s.onLinkEvent(st, e.Link)
	}
	u, d := usable(st.cfg, e.Status), e.Status.Admin == monitor.AdminDrain
	prev, seen := st.usable[e.Link]
	if seen && prev == u && st.drained[e.Link] == d {
		return
	}
	st.usable[e.Link], st.drained[e.Link] = u, d
	what := map[bool]string{true: "usable", false: "not usable"}[u]
	if d {
		what += ", drained"
	}
	s.apply(ctx, st, fmt.Sprintf("link %s %s: %s", e.Link, what, e.Reason))
}

// apply recomputes the decisions and, if any changed, installs the new
// policy and re-evaluates the export to every neighbour.
func (s *Speaker) apply(ctx context.Context, st *runState, why string) {
	s.applyPolicy(ctx, st, why, false, nil)
}

// decisions is what each neighbour is sent now: what its link and BFD
// allow (decide), then the operator's drains, then the HA role.
func (s *Speaker) decisions(st *runState) []announce {
	ann := drain(st.cfg, decide(st.cfg, st.usable, s.updateDamping(st, time.Now())), st.drained)
	return standDown(ann, st.standby)
}

// applyPolicy installs the policy when the decisions changed (or always,
// with force); it logs the neighbours whose decision differs from prev
// (by address; default: the current decisions).
func (s *Speaker) applyPolicy(ctx context.Context, st *runState, why string, force bool, prev map[netip.Addr]announce) {
	ann := s.decisions(st)
	if !force && slices.Equal(ann, st.ann) {
		return
	}
	if prev == nil {
		prev = map[netip.Addr]announce{}
		for i, n := range st.cfg.Neighbors {
			if i < len(st.ann) {
				prev[n.Address] = st.ann[i]
			}
		}
	}
	start := time.Now()
	if err := st.srv.SetPolicies(ctx, policies(st.cfg, ann)); err != nil {
		s.log.Error("bgp export policy rejected", "err", err)
		return
	}
	if err := st.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
		s.log.Error("bgp soft reset out", "err", err)
	}
	for i, n := range st.cfg.Neighbors {
		p, ok := prev[n.Address]
		if ok && p == ann[i] {
			continue
		}
		from := ""
		if ok {
			from = p.action()
		}
		s.log.Warn("bgp announcement changed", "neighbor", n.Address, "link", n.Link, "from", from, "action", ann[i].action(), "reason", why, "took", time.Since(start).Round(time.Microsecond))
		s.decide(Decision{Time: start, Neighbor: n.Address, Link: n.Link, From: from, To: ann[i].action(), Reason: why})
	}
	st.ann = ann
	s.publish(st)
}

func (s *Speaker) addPeer(ctx context.Context, srv *server.BgpServer, cfg *config.BGP, i int) error {
	n := cfg.Neighbors[i]
	hold := uint64(n.HoldTime.D() / time.Second)
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.ASN, Description: "multihome " + n.Link},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1),
			ConnectRetry: uint64(n.ConnectRetry.D() / time.Second), IdleHoldTimeAfterReset: 1,
		}},
		Transport: &api.Transport{PassiveMode: n.Passive, RemotePort: uint32(n.Port)},
	}
	if pw := n.MD5Password(); pw != "" {
		p.Conf.AuthPassword = pw
	}
	if n.TTLSecurity {
		p.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: 255}
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		return fmt.Errorf("add neighbour %s: %w", n.Address, err)
	}
	s.mu.Lock()
	s.peers[n.Address] = &peerInfo{link: n.Link, asn: n.ASN, since: time.Now()}
	s.mu.Unlock()
	return nil
}

// syncPaths makes the local RIB hold exactly prefixes.
func (s *Speaker) syncPaths(st *runState, prefixes []netip.Prefix) error {
	for p, id := range st.paths {
		if slices.Contains(prefixes, p) {
			continue
		}
		if err := st.srv.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
			return fmt.Errorf("withdraw %s: %w", p, err)
		}
		delete(st.paths, p)
	}
	for _, p := range prefixes {
		if _, ok := st.paths[p]; ok {
			continue
		}
		path, err := localPath(p)
		if err != nil {
			return err
		}
		res, err := st.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		if err == nil && len(res) == 1 {
			err = res[0].Error
		}
		if err != nil {
			return fmt.Errorf("originate %s: %w", p, err)
		}
		st.paths[p] = res[0].UUID
	}
	return nil
}

// localPath is our origination of p: origin IGP, next hop self.
func localPath(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		return &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: append(attrs, nh)}, nil
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{Family: bgp.RF_IPv6_UC, Nlri: nlri, Attrs: append(attrs, mp)}, nil
}

// reload applies a new bgp section: neighbours added, removed or changed
// (removed and added again), prefixes diffed, policy rebuilt.
func (s *Speaker) reload(ctx context.Context, st *runState, cfg *config.BGP) error {
	old := st.cfg
	keep := map[netip.Addr]bool{}
	for _, o := range old.Neighbors {
		i := slices.IndexFunc(cfg.Neighbors, func(n config.BGPNeighbor) bool { return n.Address == o.Address })
		if i >= 0 && cfg.Neighbors[i].ASN == o.ASN && cfg.Neighbors[i].LocalAddress == o.LocalAddress &&
			cfg.Neighbors[i].Port == o.Port && cfg.Neighbors[i].Passive == o.Passive &&
			cfg.Neighbors[i].HoldTime == o.HoldTime && cfg.Neighbors[i].ConnectRetry == o.ConnectRetry &&
			cfg.Neighbors[i].Link == o.Link && config.SameSession(cfg.Neighbors[i].BFD, o.BFD) &&
			cfg.Neighbors[i].MD5Password() == o.MD5Password() && cfg.Neighbors[i].TTLSecurity == o.TTLSecurity {
			keep[o.Address] = true
			continue
		}
		// Waits for the old session's sockets: the new one (below)
		// must not find port 3784 still held.
		s.stopBFD(st, o.Address)
		delete(st.bfd, o.Address)
		if err := st.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: o.Address.String()}); err != nil {
			return fmt.Errorf("remove neighbour %s: %w", o.Address, err)
		}
		s.mu.Lock()
		delete(s.peers, o.Address)
		s.mu.Unlock()
	}
	prev := map[netip.Addr]announce{}
	for i, n := range old.Neighbors {
		if i < len(st.ann) {
			prev[n.Address] = st.ann[i]
		}
	}
	st.cfg = cfg
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.applyPolicy(ctx, st, "config reloaded", true, prev)
	for i, n := range cfg.Neighbors {
		if keep[n.Address] {
			s.mu.Lock()
			s.peers[n.Address].link = n.Link
			s.mu.Unlock()
			continue
		}
		if err := s.addPeer(ctx, st.srv, cfg, i); err != nil {
			return err
		}
		s.startBFD(st, n)
	}
	if err := s.syncPaths(st, cfg.Prefixes); err != nil {
		return err
	}
	s.publish(st)
	return nil
}

// decide hands a decision to the decision log, if any.
func (s *Speaker) decide(d Decision) {
	if s.decided != nil {
		s.decided(d)
	}
}

// publish copies the decisions for the collector.
func (s *Speaker) publish(st *runState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range st.cfg.Neighbors {
		if p := s.peers[n.Address]; p != nil && i < len(st.ann) {
			p.announced = !st.ann[i].Withdraw
			p.prepend = st.ann[i].Prepend
		}
	}
}

func (s *Speaker) peerState(p apiutil.Peer, at time.Time) {
	addr := p.State.NeighborAddress
	if !addr.IsValid() {
		addr = p.Conf.NeighborAddress
	}
	s.mu.Lock()
	info := s.peers[addr]
	var from bgp.FSMState
	if info != nil {
		from = info.state
		info.state = p.State.SessionState
		info.since = at
		info.quietWarn = false
		if p.State.DisconnectMessage != "" {
			info.reason = p.State.DisconnectMessage
		}
	}
	s.mu.Unlock()
	if info == nil || from == p.State.SessionState {
		return
	}
	s.markImport(addr)
	lvl := slog.LevelInfo
	if from == bgp.BGP_FSM_ESTABLISHED {
		lvl = slog.LevelWarn
	}
	args := []any{"neighbor", addr, "link", info.link, "from", stateName(from), "to", stateName(p.State.SessionState)}
	if p.State.DisconnectMessage != "" {
		args = append(args, "reason", p.State.DisconnectMessage)
	}
	s.log.Log(context.Background(), lvl, "bgp session state changed", args...)
}

// stateName is the RFC 4271 name of a session state.
func stateName(st bgp.FSMState) string {
	switch st {
	case bgp.BGP_FSM_IDLE:
		return "idle"
	case bgp.BGP_FSM_CONNECT:
		return "connect"
	case bgp.BGP_FSM_ACTIVE:
		return "active"
	case bgp.BGP_FSM_OPENSENT:
		return "opensent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "openconfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return "unknown"
}

// levelHandler drops records below its level.
type levelHandler struct {
	slog.Handler
	min slog.Leveler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(a), h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.min}
}

// bfdClient is the speaker's hold on one neighbour's BFD session.
type bfdClient struct {
	sub  *bfd.Sub
	stop context.CancelFunc
}

// startBFD asks the BFD manager for the session to n when configured
// (retried with back-off by the manager if it fails). Its state changes
// reach Run through bfdEv.
func (s *Speaker) startBFD(st *runState, n config.BGPNeighbor) {
	if n.BFD == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := bfd.Peer{Interface: s.ifaces[n.Link], Local: n.LocalAddress, Remote: n.Address, Config: bfd.Config{
		DesiredMinTx: n.BFD.MinTx.D(), RequiredMinRx: n.BFD.MinRx.D(), DetectMult: uint8(n.BFD.Multiplier),
	}}
	c := &bfdClient{stop: cancel}
	sub, err := s.bfdMgr.Open(p, func(e bfd.Event) {
		select {
		case s.bfdEv <- bfdEvent{c.sub, e}:
		case <-ctx.Done():
		}
	})
	if err != nil {
		cancel()
		s.log.Error("bfd session refused", "neighbor", n.Address, "link", n.Link, "err", err)
		return
	}
	c.sub = sub
	st.bfdSubs[n.Address] = c
	s.mu.Lock()
	if info := s.peers[n.Address]; info != nil {
		info.bfd = sub.State()
	}
	s.mu.Unlock()
}

// stopBFD ends the speaker's hold on neighbour a's BFD session; it
// returns once the session has released its sockets (or another client
// keeps it).
func (s *Speaker) stopBFD(st *runState, a netip.Addr) {
	c := st.bfdSubs[a]
	if c == nil {
		return
	}
	delete(st.bfdSubs, a)
	c.stop()
	c.sub.Close()
}

// bfdEvent applies a neighbour's BFD state change (bfd.Event.Verdict): a
// session that leaves Up after having been Up for its hold-up takes the
// neighbour's announcements away, tells the monitor its link is down and
// tears the BGP session down at once (the neighbour's own BFD does the
// same on its side); Up gives the announcements back. A peer's AdminDown
// (RFC 5882 section 3.2), a neighbour's reset (it signals Down without
// saying it lost us, as a restarted bfdd does) and an unproven down (up
// for less than the hold-up, as when FRR 8.4's bfdd resets the session
// right after BGP comes up) change nothing but the counters: the link's probes and the
// BGP hold timer decide.
func (s *Speaker) bfdEvent(ctx context.Context, st *runState, be bfdEvent) {
	e := be.ev
	i := slices.IndexFunc(st.cfg.Neighbors, func(n config.BGPNeighbor) bool { return n.Address == e.Remote })
	if c := st.bfdSubs[e.Remote]; c == nil || c.sub != be.sub || i < 0 {
		return // a stopped session's late event
	}
	n := st.cfg.Neighbors[i]
	s.mu.Lock()
	var link string
	if info := s.peers[e.Remote]; info != nil {
		info.bfd = e.To
		link = info.link
	}
	s.mu.Unlock()
	reason := fmt.Sprintf("BFD %s→%s: %s", e.From, e.To, e.Diag)
	if e.Err != nil {
		reason = fmt.Sprintf("BFD %s→%s: session failed: %v", e.From, e.To, e.Err)
	}
	if e.To == bfd.Down && e.Diag == bfd.DiagNeighborDown {
		reason += " (neighbour's diagnostic: " + e.RemoteDiag.String() + ")"
	}
	hold := n.BFD.HoldUpD()
	v := e.Verdict(hold)
	if v != bfd.SessionUp && v != bfd.Ignore {
		s.decide(Decision{Time: e.Time, Neighbor: e.Remote, Link: n.Link, From: e.From.String(), To: e.To.String(), BFD: true,
			Reason: reason + ": " + bfdVerdict(e, v, hold, n.Link, monitor.StateOf(s.src, n.Link))})
	}
	switch v {
	case bfd.PeerAdminDown:
		s.log.Warn("bfd session down: the neighbour is administratively down, BGP and the link stay", "neighbor", e.Remote, "link", link, "reason", reason)
	case bfd.Unproven, bfd.PeerReset:
		s.mu.Lock()
		if info := s.peers[e.Remote]; info != nil {
			info.bfdUnproven++
		}
		s.mu.Unlock()
		msg := "bfd session down within its hold-up: BGP and the link stay to their own timers and probes"
		if v == bfd.PeerReset {
			msg = "bfd session reset by the neighbour (it did not say it lost us): BGP and the link stay to their own timers and probes"
		}
		s.log.Warn(msg, "neighbor", e.Remote, "link", link, "reason", reason, "up_for", e.UpFor.Round(time.Millisecond), "hold_up", hold)
	case bfd.PathDown:
		s.log.Warn("bfd session down", "neighbor", e.Remote, "link", link, "reason", reason, "up_for", e.UpFor.Round(time.Millisecond))
		if ev, ok := s.src.(Evidence); ok && link != "" {
			ev.Evidence(link, false, fmt.Sprintf("%s (neighbor %s)", reason, e.Remote))
		}
		st.bfd[e.Remote] = true
		s.apply(ctx, st, reason)
		// Reset only an established session: GoBGP keeps a reset asked
		// for while it is still connecting and applies it to the next
		// session that comes up, even after BFD is back up, so one BFD
		// flap while connecting would kill a healthy session.
		s.mu.Lock()
		established := s.peers[e.Remote] != nil && s.peers[e.Remote].state == bgp.BGP_FSM_ESTABLISHED
		s.mu.Unlock()
		if established {
			if err := st.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: e.Remote.String(), Communication: reason}); err != nil {
				s.log.Error("bgp reset peer", "neighbor", e.Remote, "err", err)
			}
		}
	case bfd.SessionUp:
		s.log.Info("bfd session up", "neighbor", e.Remote, "link", link)
		if st.bfd[e.Remote] {
			delete(st.bfd, e.Remote)
			s.apply(ctx, st, reason)
		}
	}
}

// bfdVerdict says, for the decision log, what verdict v made of a BFD
// down of a neighbour's session on link, whose state was state ("" if
// unknown).
func bfdVerdict(e bfd.Event, v bfd.Verdict, hold time.Duration, link, state string) string {
	acted := "announcements withdrawn, BGP reset, link " + link + " taken down at once"
	kept := "not acted on: announcements and BGP session kept, link " + link + " left to its probes"
	if state != "" {
		acted += " (it was " + state + ")"
		kept = "not acted on: announcements and BGP session kept, link " + link + " (" + state + ") left to its probes"
	}
	return e.Explain(v, hold, acted, kept)
}

// usable is whether a link may carry our announcements: the monitor's
// Usable, and not degraded when degraded_is_down is set.
func usable(b *config.BGP, st monitor.Status) bool {
	if b.DegradedIsDown && st.State == monitor.Degraded {
		return false
	}
	return st.Usable()
}

// updateDamping charges a flap to every neighbour that just lost its
// link (or BFD), suppresses neighbours over the threshold, releases those
// whose penalty has decayed, arms the timer for the next release, and
// returns the neighbours to treat as down: BFD down or suppressed.
func (s *Speaker) updateDamping(st *runState, now time.Time) map[netip.Addr]bool {
	c := st.cfg.Damping
	down := map[netip.Addr]bool{}
	var next time.Time
	for _, n := range st.cfg.Neighbors {
		a := n.Address
		if st.bfd[a] {
			down[a] = true
		}
		h := st.usable[n.Link] && !st.bfd[a]
		prev, seen := st.healthy[a]
		st.healthy[a] = h
		if c.Disable {
			continue
		}
		d := st.damp[a]
		if d == nil {
			d = &damping{}
			st.damp[a] = d
		}
		if seen && prev && !h && d.flap(c, now) {
			s.log.Warn("bgp announcements suppressed: link flapping", "neighbor", a, "link", n.Link,
				"penalty", int(d.penalty), "suppress", c.Suppress, "reuse_at", d.reusable(c).Format(time.RFC3339))
		}
		if d.suppressed && !now.Before(d.reusable(c)) {
			d.suppressed = false
			s.log.Info("bgp announcements no longer suppressed", "neighbor", a, "link", n.Link, "penalty", int(d.value(c, now)))
		}
		if d.suppressed {
			down[a] = true
			if r := d.reusable(c); next.IsZero() || r.Before(next) {
				next = r
			}
		}
	}
	if st.dampT != nil {
		st.dampT.Stop()
		st.dampT = nil
	}
	if !next.IsZero() {
		st.dampT = time.AfterFunc(time.Until(next)+time.Millisecond, func() {
			select {
			case s.dampC <- struct{}{}:
			default:
			}
		})
	}
	return down
}

// A session established for quietAfter that has received no prefix is
// logged once: an upstream that should send a default route or a table
// and sends nothing is misconfigured on one side.
var (
	quietAfter = time.Minute
	quietCheck = 10 * time.Second
)

func (s *Speaker) checkQuiet(ctx context.Context, srv *server.BgpServer) {
	recv := map[string]uint64{}
	srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		var n uint64
		for _, af := range p.AfiSafis {
			if af.State != nil {
				n += af.State.Received
			}
		}
		if p.Conf != nil {
			recv[p.Conf.NeighborAddress] = n
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, p := range s.peers {
		if p.state != bgp.BGP_FSM_ESTABLISHED || p.quietWarn || time.Since(p.since) < quietAfter {
			continue
		}
		if n, ok := recv[a.String()]; ok && n == 0 {
			p.quietWarn = true
			s.log.Warn("bgp session up but the neighbour sends nothing", "neighbor", a, "link", p.link,
				"established_for", time.Since(p.since).Round(time.Second))
		}
	}
}
