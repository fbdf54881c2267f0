// Package monitor judges the health of every uplink and reports changes.
//
// For each link it probes several targets through the link (package
// probe), watches the interface's carrier and addresses through netlink,
// and samples its byte counters. From this evidence a per-link state
// machine decides Unknown, Up, Degraded or Down, with hysteresis, quorum,
// loss-adaptive failure streaks and a hold-down before failback; and
// whether the link is saturated. Every change is published on a Bus as an
// Event carrying its reason and a full Status, and logged as one decision
// line. docs/monitor.md explains the state machine, the detection
// arithmetic and the measured detection times.
//
// One goroutine (Run's) owns all mutable link state. Probers, the netlink
// watcher and the counter samplers only send it messages; Snapshot reads a
// copy published after every change.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/probe"
	"github.com/multihome/multihome/route"
)

// Monitor watches the links of a config. Create it with New, start it with
// Run.
type Monitor struct {
	log *slog.Logger
	bus Bus

	// Owned by the loop goroutine once Run starts.
	cfg    *config.Config
	links  []*linkRun
	runCtx context.Context
	wg     *sync.WaitGroup

	msgs chan linkMsg
	reqs chan func()
	// verdicts are other subsystems' Evidence, Hold and Release, in order.
	verdicts *verdicts
	// nl reads interface counters on demand, in the loop (nil without
	// netlink).
	nl      *netlink.Handle
	started atomic.Bool
	stopped chan struct{}

	mu   sync.Mutex
	snap []Status

	// newProber makes probers; tests replace it.
	newProber func(config.Probe, probe.Binding) (probe.Prober, error)
	// noNetlink disables the netlink watcher and counters (unit tests).
	noNetlink bool
	// ifChanges wakes InterfaceChanges' receivers (the watcher signals).
	ifChanges changes
}

// linkRun is a link's state plus the goroutines working for it.
type linkRun struct {
	*linkState
	index   int    // position in the config (for its mark)
	gen     uint64 // probing generation: results of older ones are dropped
	cancel  context.CancelFunc
	timeout []atomic.Int64 // per-target probe timeout, set by the loop
	bind    probe.Binding
	learned addrMsg // addresses of the interface
	// resolver resolves the link's host-name targets (nil without
	// resolvers); kept across probe restarts for its cache.
	resolver *probe.Resolver
}

// linkMsg is anything the loop receives about one link (by name) or one
// interface (by iface).
type linkMsg struct {
	link  string
	iface string
	gen   uint64
	// One of:
	result  *probeResult
	carrier *carrierMsg
	addrs   *addrMsg
	count   *countMsg
}

type carrierMsg struct {
	up  bool
	why string
}

type addrMsg struct{ v4, v6 []netip.Addr }

type countMsg struct {
	at     time.Time
	rx, tx uint64
}

// New checks cfg and returns a monitor for its links. Nothing runs until
// Run.
func New(cfg *config.Config, log *slog.Logger) (*Monitor, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		log:       log.With("subsystem", "monitor"),
		cfg:       cfg,
		msgs:      make(chan linkMsg, 1024),
		reqs:      make(chan func()),
		verdicts:  newVerdicts(),
		stopped:   make(chan struct{}),
		newProber: probe.New,
	}
	now := time.Now()
	for i, l := range cfg.Links {
		m.links = append(m.links, &linkRun{linkState: newLinkState(cfg, l, now), index: i})
	}
	m.publishSnapshot()
	return m, nil
}

// checkConfig rejects what the monitor cannot run: a loaded config has
// been validated already; this guards configs built in Go.
func checkConfig(cfg *config.Config) error {
	if cfg == nil || len(cfg.Links) == 0 {
		return errors.New("monitor: no links configured")
	}
	seen := map[string]bool{}
	for i, l := range cfg.Links {
		if l.Name == "" || seen[l.Name] {
			return fmt.Errorf("monitor: links[%d]: missing or duplicate name %q", i, l.Name)
		}
		seen[l.Name] = true
		if l.Interface == "" {
			return fmt.Errorf("monitor: link %s: no interface", l.Name)
		}
		if len(l.Probes) == 0 {
			return fmt.Errorf("monitor: link %s: no probe targets", l.Name)
		}
		for _, p := range l.Probes {
			if err := probe.Check(p); err != nil {
				return fmt.Errorf("monitor: link %s: %w", l.Name, err)
			}
		}
	}
	return nil
}

// Subscribe implements Source.
func (m *Monitor) Subscribe() (<-chan Event, func()) { return m.bus.Subscribe() }

// InterfaceChanges returns a channel that receives a value after links or
// addresses of the namespace changed, and once at first: its receiver
// re-reads what it needs from the kernel. Wake-ups are coalesced (one
// pending at most) and carry nothing; after a failed netlink subscription
// the receiver is woken again, as changes may have been missed. They come
// from the monitor's own subscription (ifwatch) while Run runs, so that
// what follows the same interfaces needs none of its own (daemon/addrs,
// the learned addresses). cancel stops them.
func (m *Monitor) InterfaceChanges() (<-chan struct{}, func()) { return m.ifChanges.subscribe() }

// Snapshot implements Source: the status of every link in config order.
func (m *Monitor) Snapshot() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, len(m.snap))
	for i, s := range m.snap {
		s.Targets = slices.Clone(s.Targets)
		out[i] = s
	}
	return out
}

var errNotRunning = errors.New("monitor: not running")

// do runs fn in the loop goroutine and waits for it.
func (m *Monitor) do(fn func() error) error {
	if !m.started.Load() {
		return errNotRunning
	}
	errc := make(chan error, 1)
	select {
	case m.reqs <- func() { errc <- fn() }:
		return <-errc
	case <-m.stopped:
		return errNotRunning
	}
}

// Evidence takes a verdict on a link from another subsystem, such as a BFD
// session to the link's next hop. Down marks the link down at once, as a
// carrier loss does; up needs nothing more: the probes prove the link
// again (up_after successes, then the hold-down). It does not block.
// Evidence, Hold and Release are applied in the order they are called.
func (m *Monitor) Evidence(link string, up bool, reason string) {
	if up {
		return
	}
	m.verdicts.put(link, func(l *linkState, now time.Time) {
		if l.state() != Down {
			l.outage(now, reason)
		}
	})
}

// Hold keeps a link down on another subsystem's verdict until the same
// source calls Release: e.g. a BGP neighbour with require_default that
// stopped sending the default route. Unlike Evidence, the probes cannot
// bring the link back while any hold is set; after the last Release they
// must prove it (up_after successes, then the hold-down). source names the
// verdict ("bgp 198.51.100.1 default"); calling Hold again with another
// reason only updates the reason. It does not block; Hold and Release
// take effect in the order they are called (one queue, one goroutine).
func (m *Monitor) Hold(link, source, reason string) {
	m.verdicts.put(link, func(l *linkState, now time.Time) { l.setHold(now, source, reason, true) })
}

// Release ends source's hold on link (a no-op without one). It does not
// block.
func (m *Monitor) Release(link, source string) {
	m.verdicts.put(link, func(l *linkState, now time.Time) { l.setHold(now, source, "", false) })
}

// SetAdmin overrides a link's state: AdminDown forces it down, AdminDrain
// keeps it but takes no new flows, AdminNone gives it back to its health.
// reason is the operator's word, repeated in the events. SetAdmin returns
// once the change is published; it fails when Run is not running.
func (m *Monitor) SetAdmin(link string, a Admin, reason string) error {
	if a < AdminNone || a > AdminDrain {
		return fmt.Errorf("monitor: bad admin state %d", a)
	}
	return m.do(func() error {
		l := m.link(link)
		if l == nil {
			return fmt.Errorf("monitor: no link %q", link)
		}
		l.setAdmin(time.Now(), a, reason)
		m.flush(l)
		return nil
	})
}

// Update applies a new config while Run runs. Links are matched by name
// and keep their state and admin override; new thresholds apply from the
// next probe result. A link whose interface, addresses, probes, interval
// or position changed restarts its probing (a changed probe list also
// restarts its measurements); new links start Unknown; removed links are
// dropped.
func (m *Monitor) Update(cfg *config.Config) error {
	if err := checkConfig(cfg); err != nil {
		return err
	}
	return m.do(func() error { m.apply(cfg); return nil })
}

// Run probes and watches the links until ctx is done, then stops every
// goroutine it started and closes every socket it opened. It returns nil
// when ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("monitor: Run called twice")
	}
	defer close(m.stopped)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	m.runCtx, m.wg = ctx, &wg
	defer func() {
		cancel()
		for _, l := range m.links {
			m.stopLink(l)
		}
		wg.Wait()
	}()

	if !m.noNetlink {
		if h, err := netlink.NewHandle(); err != nil {
			m.log.Error("cannot read interface counters on demand", "err", err)
		} else {
			m.nl = h
			defer h.Close()
		}
		// Subscribe first, then read the current state: nothing falls
		// between the two.
		w := &watcher{log: m.log, out: m.msgs, changed: m.ifChanges.signal}
		ready := make(chan struct{})
		wg.Go(func() { w.run(ctx, ready) })
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
		now := time.Now()
		for _, l := range m.links {
			m.readInterface(now, l)
		}
	}
	for _, l := range m.links {
		m.startLink(l)
		m.flush(l)
	}
	m.applyVerdicts() // given before Run

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := m.nextDeadline(); !next.IsZero() {
			timer.Reset(max(0, time.Until(next)))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case msg := <-m.msgs:
			m.handle(msg)
		case fn := <-m.reqs:
			fn()
		case <-m.verdicts.kick:
			m.applyVerdicts()
		case <-timer.C:
			now := time.Now()
			for _, l := range m.links {
				l.tick(now)
				m.flush(l)
			}
		}
	}
}

func (m *Monitor) nextDeadline() time.Time {
	var next time.Time
	for _, l := range m.links {
		if d := l.deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

func (m *Monitor) link(name string) *linkRun {
	for _, l := range m.links {
		if l.name == name {
			return l
		}
	}
	return nil
}

// handle applies one message from a prober, the watcher or a sampler.
func (m *Monitor) handle(msg linkMsg) {
	if msg.iface != "" {
		now := time.Now()
		for _, l := range m.links {
			if l.iface != msg.iface {
				continue
			}
			if msg.carrier != nil {
				l.setCarrier(now, msg.carrier.up, msg.carrier.why)
				m.flush(l)
			}
			if msg.addrs != nil {
				m.learnAddrs(l, *msg.addrs)
			}
		}
		return
	}
	l := m.link(msg.link)
	if l == nil || msg.gen != l.gen {
		return
	}
	switch {
	case msg.result != nil:
		if msg.result.err != nil {
			// The verdict a failure may bring rests on what the link
			// received up to now, not up to the last periodic sample.
			m.readRx(l)
		}
		l.result(*msg.result)
		if i := msg.result.target; i < len(l.timeout) {
			l.timeout[i].Store(int64(l.linkState.timeout(i)))
		}
	case msg.count != nil:
		l.counters(msg.count.at, msg.count.rx, msg.count.tx)
	}
	m.flush(l)
}

// readRx reads the link's received-bytes counter now.
func (m *Monitor) readRx(l *linkRun) {
	if m.nl == nil {
		return
	}
	lk, err := m.nl.LinkByName(l.iface)
	if err != nil || lk.Attrs().Statistics == nil {
		return
	}
	l.rxAdd(time.Now(), lk.Attrs().Statistics.RxBytes)
}

// flush publishes the link's pending decisions and refreshes the snapshot.
func (m *Monitor) flush(l *linkRun) {
	out := l.out
	l.out = nil
	st := l.status()
	m.setSnapshot(l.name, st)
	for _, d := range out {
		m.logDecision(l, d, st)
		if d.publish {
			m.bus.Publish(Event{Time: d.at, Kind: d.kind, Link: l.name, From: d.from, To: d.to, Reason: d.reason, Status: st})
		}
	}
}

func (m *Monitor) logDecision(l *linkRun, d decision, st Status) {
	msg := d.msg
	if msg == "" {
		switch d.kind {
		case StateChanged:
			msg = "link state changed"
		case HoldDownStarted:
			msg = "link hold-down started"
		case HoldDownAborted:
			msg = "link hold-down aborted"
		case SaturationChanged:
			msg = "link saturation changed"
		case AdminChanged:
			msg = "link admin changed"
		}
	}
	attrs := []any{"link", l.name, "from", d.from, "to", d.to, "reason", d.reason,
		"loss", fmt.Sprintf("%.1f%%", 100*st.Loss), "rtt", round(st.RTT), "targets_up", st.TargetsUp}
	if d.kind == SaturationChanged {
		attrs = append(attrs, "saturated", st.Saturated,
			"util_down", fmt.Sprintf("%.0f%%", 100*st.UtilDown), "util_up", fmt.Sprintf("%.0f%%", 100*st.UtilUp))
	}
	level := slog.LevelInfo
	if d.kind == StateChanged && d.to == Down && d.from != Down {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, msg, attrs...)
}

func (m *Monitor) publishSnapshot() {
	snap := make([]Status, len(m.links))
	for i, l := range m.links {
		snap[i] = l.status()
	}
	m.mu.Lock()
	m.snap = snap
	m.mu.Unlock()
}

func (m *Monitor) setSnapshot(link string, st Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.snap {
		if m.snap[i].Link == link {
			m.snap[i] = st
			return
		}
	}
}

// linkMark is the outbound datapath's mark of link i (package route):
// probes carry it, so that they follow the link's own routing table
// whatever the main table says, and the outbound ruleset leaves them
// alone ("pinned socket").
func linkMark(cfg *config.Config, i int) uint32 {
	mask := cfg.EffectiveOutbound().MarkMask
	if mask == 0 || i+1 >= config.MarkSlots(mask) {
		return 0
	}
	return route.SchemeFor(cfg).Mark(i)
}
