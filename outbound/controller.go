// Package outbound is the outbound datapath controller: it turns the
// config's policies and rules plus the link monitor's verdicts into kernel
// state (per-link routing tables and ip rules via package route, one
// nftables table via package nft) and keeps it there.
//
// New flows, forwarded from the LAN or opened by the gateway itself, are
// matched against the ordered rules; the rule's policy picks a link among
// the healthy ones; the choice is stored in the packet and conntrack mark,
// so every later packet of the flow takes the same link, and the flow is
// source-NATed to that link's address. When a link fails the controller
// first applies the new ruleset and only then deletes from conntrack the
// entries of that link's flows (never when no other link is healthy);
// when it recovers (after the monitor's hold-down) new flows use it again
// and existing ones stay where they are, unless a rule asks to migrate
// them. See docs/outbound.md.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ifwatch"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	"github.com/multihome/multihome/nft"
	"github.com/multihome/multihome/route"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// Controller drives the outbound datapath. Create it with New and run it
// with Run; all kernel state is owned by the Run goroutine.
type Controller struct {
	log *slog.Logger
	src monitor.Source

	nsName string // "" = the process's own namespace
	h      *netlink.Handle
	ns     *vnetns.NsHandle // for subscriptions; nil = own namespace
	nsFile *os.File         // for conntrack; nil = own namespace
	routes *route.Manager
	table  *nft.Table
	ct     tracker

	metrics *metrics
	// newFlows reads the ruleset's new-flow counters when scraped.
	newFlows *newFlowsCollector
	// view is the config's mark scheme and link names, for counting flows
	// from other goroutines (FlowCounts).
	view atomic.Pointer[flowView]
	// flows is the last background count of flows per link (countFlows);
	// kickCount asks for a new one soon.
	flows     atomic.Pointer[flowCount]
	kickCount chan struct{}
	// ctJobs feeds conntrack flushes and migrations to the goroutine that
	// runs them (ctWorker), off the event path; ctDone brings back the
	// flushes that failed.
	ctJobs chan ctJob
	ctDone chan ctResult

	// standbyWant is the HA role the daemon last reported (SetStandby);
	// roleKick tells Run.
	standbyWant atomic.Bool
	roleKick    chan struct{}

	mu      sync.Mutex // guards running, ran and, while not running, cfg
	running bool
	ran     bool
	updates chan updateReq
	done    chan struct{} // closed when Run returns

	// Owned by Run.
	cfg      *config.Config
	o        config.Outbound
	status   map[string]monitor.Status
	learned  map[string]learnedAddrs
	pending  map[string]bool         // down links whose flows wait for a flush
	flushing map[string]*atomic.Bool // flushes queued or running; set: cancelled
	last     *plan
	inSync   bool
	standby  bool // not the master of an HA pair (SetStandby)
	lastErr  string
}

type updateReq struct {
	cfg *config.Config
	err chan error
}

// Option configures a Controller.
type Option func(*Controller) error

// WithNetns makes the controller work inside the named network namespace
// (one `ip netns` knows) instead of the process's own: netlink through a
// handle opened there, nft forked from a thread inside it, conntrack
// through a socket in that namespace. For tests and the lab.
func WithNetns(name string) Option {
	return func(c *Controller) error {
		h, ns, err := netns.Open(name)
		if err != nil {
			return err
		}
		f, err := os.Open(netns.Path(name))
		if err != nil {
			h.Close()
			ns.Close()
			return fmt.Errorf("netns %s: %w", name, err)
		}
		c.nsName, c.h, c.ns, c.nsFile = name, h, &ns, f
		c.table = nft.NewTable(nft.CommandIn(name, "nft"), TableFamily, TableName)
		c.ct = tracker{nsFD: int(f.Fd())}
		return nil
	}
}

// WithNft runs argv (e.g. a wrapper script) instead of nft, in the
// controller's namespace when WithNetns came first. For tests.
func WithNft(argv ...string) Option {
	return func(c *Controller) error {
		run := nft.Command(argv...)
		if c.nsName != "" {
			run = nft.CommandIn(c.nsName, argv...)
		}
		c.table = nft.NewTable(run, TableFamily, TableName)
		return nil
	}
}

// New returns a controller for cfg fed by src. It checks the config but
// does not touch the kernel: Run does.
func New(cfg *config.Config, src monitor.Source, log *slog.Logger, opts ...Option) (*Controller, error) {
	if log == nil {
		log = slog.Default()
	}
	o := cfg.EffectiveOutbound()
	if err := validate(cfg, o); err != nil {
		return nil, fmt.Errorf("outbound: %w", err)
	}
	c := &Controller{
		log:      log.With("subsystem", "outbound"),
		src:      src,
		cfg:      cfg,
		o:        o,
		updates:  make(chan updateReq),
		done:     make(chan struct{}),
		status:   map[string]monitor.Status{},
		learned:  map[string]learnedAddrs{},
		pending:  map[string]bool{},
		flushing: map[string]*atomic.Bool{},
		metrics:  newMetrics(),

		kickCount: make(chan struct{}, 1),
		roleKick:  make(chan struct{}, 1),
		ctJobs:    make(chan ctJob, ctQueue),
		ctDone:    make(chan ctResult, ctQueue),
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			c.close()
			return nil, fmt.Errorf("outbound: %w", err)
		}
	}
	if c.table == nil {
		c.table = nft.NewTable(nft.Command("nft"), TableFamily, TableName)
	}
	// Tamper checks list the table only after an nftables transaction.
	c.table.SetGeneration(nft.Generation(c.nsName))
	c.newFlows = newNewFlowsCollector(nft.Counters(c.nsName, TableFamily, TableName))
	if c.routes == nil {
		c.routes = route.NewManager(c.h)
	}
	if err := c.routes.Lease(route.Outbound, route.SchemeOf(o).Lease()); err != nil {
		c.close()
		return nil, fmt.Errorf("outbound: %w", err)
	}
	c.view.Store(newFlowView(cfg, o))
	return c, nil
}

// UseRoutes makes the controller write through m, the route manager the
// daemon shares between all owners, instead of its own. Call it before
// Run.
func (c *Controller) UseRoutes(m *route.Manager) error {
	l, _ := c.routes.LeaseOf(route.Outbound)
	if err := m.Lease(route.Outbound, l); err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
	c.routes = m
	return nil
}

func (c *Controller) close() {
	if c.h != nil {
		c.h.Close()
	}
	if c.ns != nil {
		c.ns.Close()
	}
	if c.nsFile != nil {
		c.nsFile.Close()
	}
}

// Update switches to a new config: the new desired state is computed and
// applied; on error the controller keeps running on the old config.
func (c *Controller) Update(cfg *config.Config) error {
	o := cfg.EffectiveOutbound()
	if err := validate(cfg, o); err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
	c.mu.Lock()
	if !c.running {
		c.cfg, c.o = cfg, o
		err := c.routes.Lease(route.Outbound, route.SchemeOf(o).Lease())
		if err == nil {
			c.view.Store(newFlowView(cfg, o))
		}
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	req := updateReq{cfg: cfg, err: make(chan error, 1)}
	select {
	case c.updates <- req:
		return <-req.err
	case <-c.done:
		return errors.New("outbound: controller stopped")
	}
}

// SetStandby tells the controller whether this node is not the master of
// an HA pair (the daemon calls it on every role change; until then the
// node counts as master). It changes the datapath only with a transit
// link: a standby sends the replies of the flows its partner forwarded to
// it back to the partner (transit.go).
func (c *Controller) SetStandby(standby bool) {
	c.standbyWant.Store(standby)
	select {
	case c.roleKick <- struct{}{}:
	default:
	}
}

// FollowsRole reports whether SetStandby changes the datapath: only with
// a transit link to the partner (split uplinks). For the decision log.
func (c *Controller) FollowsRole() bool { return c.view.Load().transit }

// Run applies the desired state, then follows link events, config
// updates and periodic verification until ctx is done; then it removes
// everything it created (unless outbound.keep_on_exit) and returns.
// It is long on purpose: the setup, its deferred teardown in order, and the
// select loop of the goroutine that owns the state (one-line cases) read
// best in one place.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running || c.ran {
		c.mu.Unlock()
		return errors.New("outbound: Run called twice")
	}
	c.running, c.ran = true, true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
		close(c.done)
		c.close()
	}()

	// Conntrack work runs beside the event loop; it stops (and is waited
	// for) before the namespace file is closed.
	wctx, wcancel := context.WithCancel(ctx)
	var workers sync.WaitGroup
	workers.Go(func() { c.ctWorker(wctx) })
	workers.Go(func() { c.countFlows(wctx, c.kickCount) })
	defer func() {
		wcancel()
		workers.Wait()
	}()

	events, cancel := c.src.Subscribe()
	defer cancel()
	for _, s := range c.src.Snapshot() {
		c.status[s.Link] = s
	}
	c.learn()
	c.standby = c.standbyWant.Load()
	if err := c.apply(ctx, "start"); err != nil {
		c.cleanup()
		return fmt.Errorf("outbound: initial apply: %w", err)
	}
	c.dropEarlyPartnerFlows()
	// Adopting after a restart: flows left on links that are down now.
	for _, l := range c.cfg.Links {
		if c.status[l.Name].State == monitor.Down && *c.o.FlushOnFailure {
			c.pending[l.Name] = true
		}
	}
	c.flushPending("start")

	kick := c.subscribeInterfaces(ctx)
	verify := time.NewTicker(c.o.Reconcile.D())
	defer verify.Stop()
	load := time.NewTicker(time.Second)
	defer load.Stop()
	var repair <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return c.cleanup()
		case ev, ok := <-events:
			if !ok {
				events = nil
				c.log.Warn("link monitor closed its event stream: keeping the current state")
				continue
			}
			c.onEvent(ctx, ev)
		case req := <-c.updates:
			req.err <- c.onUpdate(ctx, req.cfg)
			verify.Reset(c.o.Reconcile.D())
		case r := <-c.ctDone:
			c.onFlushed(r)
		case <-c.roleKick:
			if sb := c.standbyWant.Load(); sb != c.standby {
				c.standby = sb
				c.apply(ctx, fmt.Sprintf("ha role: standby %v", sb))
			}
		case <-verify.C:
			c.verify(ctx)
		case <-load.C:
			c.refreshLoad(ctx)
		case <-kick:
			// Let a burst of interface changes settle (without blocking
			// the link events that usually come with it), then repair.
			if repair == nil {
				repair = time.After(50 * time.Millisecond)
			}
		case <-repair:
			repair = nil
			c.verify(ctx)
		}
	}
}

func (c *Controller) statuses() []monitor.Status {
	out := make([]monitor.Status, 0, len(c.cfg.Links))
	for _, l := range c.cfg.Links {
		s, ok := c.status[l.Name]
		if !ok {
			s = monitor.Status{Link: l.Name, Interface: l.Interface}
		}
		out = append(out, s)
	}
	return out
}

// apply computes the desired state and writes what changed.
// With deferRecord the caller records the listing itself, after its time
// critical follow-up (the conntrack flush).
func (c *Controller) apply(ctx context.Context, reason string, deferRecord ...bool) error {
	deferRec := len(deferRecord) > 0 && deferRecord[0]
	p := build(c.cfg, c.o, viewsFor(c.cfg, c.statuses(), c.learned), c.standby)
	if c.last != nil && c.inSync && p.text == c.last.text {
		return nil
	}
	start := time.Now()
	var rerr error
	if c.last == nil || !c.inSync || p.routes.String() != c.last.routes.String() {
		_, rerr = c.routes.Set(route.Outbound, p.routes)
	}
	nerr := c.table.Apply(ctx, p.ruleset, p.flush)
	took := time.Since(start)
	for i, ch := range p.choices {
		if c.last == nil || i >= len(c.last.choices) || c.last.choices[i].why != ch.why {
			c.log.Info("policy decision", "policy", ch.policy.Name, "type", ch.policy.Type, "new_flows", ch.why, "reason", reason)
		}
	}
	err := errors.Join(rerr, nerr)
	c.last, c.inSync = p, err == nil
	c.metrics.applySeconds.Observe(took.Seconds())
	names := make([]string, len(c.cfg.Links))
	for i, l := range c.cfg.Links {
		names[i] = l.Name
	}
	c.metrics.setShares(p, names)
	if err != nil {
		c.metrics.applies.WithLabelValues("error").Inc()
		if msg := err.Error(); msg != c.lastErr {
			c.log.Error("apply failed: will retry", "reason", reason, "err", err)
			c.lastErr = msg
		}
		return err
	}
	c.metrics.applies.WithLabelValues("ok").Inc()
	c.lastErr = ""
	c.log.Debug("applied", "reason", reason, "took", took)
	if !deferRec {
		c.record(ctx)
	}
	return nil
}

// record notes the applied ruleset for tamper detection.
func (c *Controller) record(ctx context.Context) {
	if err := c.table.Record(ctx); err != nil {
		c.log.Warn("reading back the ruleset", "err", err)
	}
}

func (c *Controller) linkIndex(name string) int { return c.cfg.LinkIndex(name) }

func (c *Controller) onEvent(ctx context.Context, ev monitor.Event) {
	if c.linkIndex(ev.Link) < 0 {
		return
	}
	prev := c.status[ev.Link]
	now := ev.Status
	now.Link = ev.Link
	c.status[ev.Link] = now
	c.log.Info("link event", "link", ev.Link, "kind", ev.Kind, "from", ev.From, "to", ev.To,
		"accepts_new", now.AcceptsNew(), "saturated", now.Saturated, "evidence", ev.Reason)
	c.apply(ctx, fmt.Sprintf("link %s %s", ev.Link, ev.Kind), true)
	defer c.record(ctx)
	if now.Usable() {
		delete(c.pending, ev.Link)
		if f := c.flushing[ev.Link]; f != nil {
			f.Store(true) // back before its flush ran: keep its flows
		}
	} else if now.State == monitor.Down && prev.State != monitor.Down && *c.o.FlushOnFailure {
		c.pending[ev.Link] = true
	}
	c.flushPending("link " + ev.Link + " " + now.State.String())
	if !prev.AcceptsNew() && now.AcceptsNew() {
		c.migrate(ev.Link)
	}
}

// flushPending deletes the conntrack entries of down links, but only once
// the ruleset is in place and while another link takes new flows.
func (c *Controller) flushPending(reason string) {
	if len(c.pending) == 0 {
		return
	}
	if !c.inSync {
		c.log.Warn("not flushing flows of down links: the ruleset is not applied", "links", keys(c.pending))
		return
	}
	for _, name := range keys(c.pending) {
		var others []string
		for _, l := range c.cfg.Links {
			if l.Name != name && c.status[l.Name].AcceptsNew() {
				others = append(others, l.Name)
			}
		}
		if len(others) == 0 {
			c.log.Warn("link down but no other link is healthy: keeping its flows", "link", name)
			c.metrics.flushSkipped.WithLabelValues(name).Inc()
			continue
		}
		c.queueFlush(name, others, reason)
	}
}

// migrate moves flows of migrate_on_recovery rules off links their policy
// no longer picks, now that link recovered.
func (c *Controller) migrate(recovered string) {
	if c.last == nil || !c.inSync {
		return
	}
	s := route.SchemeOf(c.o)
	for _, r := range c.o.Rules {
		if !r.MigrateOnRecovery {
			continue
		}
		var ch choice
		for _, x := range c.last.choices {
			if x.policy.Name == r.Policy {
				ch = x
			}
		}
		active := map[int]bool{}
		for _, m := range ch.members {
			active[m.idx] = true
		}
		if !active[c.linkIndex(recovered)] {
			continue
		}
		for _, name := range ch.policy.Links {
			i := c.linkIndex(name)
			if active[i] {
				continue
			}
			c.queueMigrate(r, ch.policy.Name, name, recovered, s.Mark(i), c.o.MarkMask)
		}
	}
}

func (c *Controller) onUpdate(ctx context.Context, cfg *config.Config) error {
	o := cfg.EffectiveOutbound()
	old, oldO, oldLast := c.cfg, c.o, c.last
	for i, l := range cfg.Links {
		if j := old.LinkIndex(l.Name); j >= 0 && j != i {
			c.log.Warn("link moved in the config: its mark and table change; its existing flows lose their link", "link", l.Name, "from", j, "to", i)
		}
	}
	if route.SchemeOf(o) != route.SchemeOf(oldO) {
		// The new lease: what the old one held is removed first.
		if err := c.routes.Lease(route.Outbound, route.SchemeOf(o).Lease()); err != nil {
			c.log.Warn("clearing the old rule/table ranges", "err", err)
		}
	}
	c.cfg, c.o = cfg, o
	c.inSync = false
	if err := c.apply(ctx, "config update"); err != nil {
		c.cfg, c.o = old, oldO
		if err := c.routes.Lease(route.Outbound, route.SchemeOf(oldO).Lease()); err != nil {
			c.log.Warn("restoring the old rule/table ranges", "err", err)
		}
		c.last = oldLast
		c.inSync = false
		if err2 := c.apply(ctx, "config update rolled back"); err2 != nil {
			err = errors.Join(err, err2)
		}
		return fmt.Errorf("outbound: new config not applied, keeping the old one: %w", err)
	}
	c.view.Store(newFlowView(cfg, o))
	c.recount()
	return nil
}

// verify repairs kernel state that someone changed.
func (c *Controller) verify(ctx context.Context) {
	if c.last == nil {
		return
	}
	if c.learn() {
		c.apply(ctx, "interface addresses changed")
	}
	ok, err := c.table.Verify(ctx)
	if err != nil {
		c.log.Error("verify ruleset", "err", err)
	}
	if !ok && c.inSync {
		c.log.Warn("nftables table changed outside multihome: re-applying", "table", TableFamily+" "+TableName)
		c.metrics.repairs.WithLabelValues("ruleset").Inc()
		c.inSync = false
	}
	if c.inSync {
		n, err := c.routes.Set(route.Outbound, c.last.routes)
		if n > 0 {
			c.log.Warn("ip rules/routes changed outside multihome: repaired", "changes", n)
			c.metrics.repairs.WithLabelValues("routes").Add(float64(n))
		}
		if err != nil {
			c.inSync = false
		}
	}
	if !c.inSync {
		c.apply(ctx, "repair")
		c.flushPending("repair")
	}
}

// refreshLoad follows utilisation for least-loaded and spillover policies.
func (c *Controller) refreshLoad(ctx context.Context) {
	needed := false
	for _, p := range c.o.Policies {
		needed = needed || p.Type == config.PolicyLeastLoaded || p.Spillover > 0
	}
	if !needed {
		return
	}
	for _, s := range c.src.Snapshot() {
		if cur, ok := c.status[s.Link]; ok {
			cur.UtilDown, cur.UtilUp, cur.RateDown, cur.RateUp, cur.Saturated = s.UtilDown, s.UtilUp, s.RateDown, s.RateUp, s.Saturated
			c.status[s.Link] = cur
		}
	}
	c.apply(ctx, "utilisation")
}

// learn reads the addresses of links that have none configured. It
// reports whether any changed.
func (c *Controller) learn() bool {
	h := c.h
	if h == nil {
		h = &netlink.Handle{}
	}
	changed := false
	for _, l := range c.cfg.Links {
		var a learnedAddrs
		if lk, err := h.LinkByName(l.Interface); err == nil {
			if v4, _ := ifwatch.SourceAddrs(h, lk, 4); len(v4) > 0 {
				a.v4 = v4[0]
			}
			if v6, _ := ifwatch.SourceAddrs(h, lk, 6); len(v6) > 0 {
				a.v6 = v6[0]
			}
		}
		if c.learned[l.Name] != a {
			changed = true
			c.learned[l.Name] = a
		}
	}
	return changed
}

// subscribeInterfaces kicks a repair when an interface or address changes
// (ifdown/ifup flushes the link's routes from our tables), and after a
// netlink subscription was made again (ifwatch).
func (c *Controller) subscribeInterfaces(ctx context.Context) <-chan struct{} {
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	go ifwatch.Run(ctx, c.ns, c.log, ifwatch.Handler{
		Subscribed: func() error { poke(); return nil },
		Link:       func(netlink.LinkUpdate) { poke() },
		Addr:       func(netlink.AddrUpdate) { poke() },
	}, nil)
	return kick
}

// cleanup removes everything the controller created, unless configured
// to keep it.
func (c *Controller) cleanup() error {
	if c.o.KeepOnExit {
		c.log.Info("stopping: keeping the ruleset, rules and routes (keep_on_exit)")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.table.Delete(ctx)
	_, rerr := c.routes.Clear(route.Outbound)
	if err := errors.Join(err, rerr); err != nil {
		return fmt.Errorf("outbound: cleanup: %w", err)
	}
	c.log.Info("stopped: removed the ruleset, rules and routes")
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
