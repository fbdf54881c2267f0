package monitor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ifwatch"
	"github.com/multihome/multihome/probe"
)

// binding returns the socket binding of a link's probes: its interface,
// its mark, and its addresses (configured, else learned).
func (m *Monitor) binding(l *linkRun) probe.Binding {
	b := probe.Binding{Interface: l.iface, Mark: linkMark(m.cfg, l.index), Source4: l.cfg.Address4, Source6: l.cfg.Address6}
	if !b.Source4.IsValid() && len(l.learned.v4) > 0 {
		b.Source4 = l.learned.v4[0]
	}
	if !b.Source6.IsValid() && len(l.learned.v6) > 0 {
		b.Source6 = l.learned.v6[0]
	}
	// One resolver (and cache) per link, kept while its servers are.
	var servers []netip.AddrPort
	for _, r := range l.cfg.Resolvers {
		servers = append(servers, r.AddrPort)
	}
	if len(servers) == 0 {
		l.resolver = nil
	} else if l.resolver == nil || !slices.Equal(l.resolver.Servers(), servers) {
		l.resolver = probe.NewResolver(servers...)
	}
	b.Resolver = l.resolver
	return b
}

// startLink starts the link's prober and counter goroutines under a new
// generation.
func (m *Monitor) startLink(l *linkRun) {
	l.gen++
	ctx, cancel := context.WithCancel(m.runCtx)
	l.cancel = cancel
	l.bind = m.binding(l)
	l.timeout = make([]atomic.Int64, len(l.targets))
	for i := range l.targets {
		l.timeout[i].Store(int64(l.linkState.timeout(i)))
	}
	pl := &probeLoop{
		link: l.name, gen: l.gen, probes: slices.Clone(l.cfg.Probes), bind: l.bind,
		interval: l.s.interval, timeout: l.timeout, out: m.msgs, newProber: m.newProber,
	}
	m.wg.Go(func() { pl.run(ctx) })
	if !m.noNetlink {
		name, iface, gen, every := l.name, l.iface, l.gen, l.s.sample
		m.wg.Go(func() { m.countLoop(ctx, name, iface, gen, every) })
	}
}

// stopLink stops the link's goroutines; their late messages are dropped
// by generation.
func (m *Monitor) stopLink(l *linkRun) {
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
}

// probeLoop probes the targets of one link in turn: with n targets and
// interval I, a probe leaves every I/n and target i is probed at offsets
// i·I/n + k·I. Probes may overlap when the timeout is longer than I/n.
type probeLoop struct {
	link      string
	gen       uint64
	probes    []config.Probe
	bind      probe.Binding
	interval  time.Duration
	timeout   []atomic.Int64
	out       chan<- linkMsg
	newProber func(config.Probe, probe.Binding) (probe.Prober, error)
}

func (p *probeLoop) run(ctx context.Context) {
	n := len(p.probes)
	probers := make([]probe.Prober, n)
	var inflight sync.WaitGroup
	defer func() {
		for _, pr := range probers {
			if pr != nil {
				pr.Close()
			}
		}
		inflight.Wait()
	}()
	send := func(r probeResult) {
		select {
		case p.out <- linkMsg{link: p.link, gen: p.gen, result: &r}:
		case <-ctx.Done():
		}
	}
	slot := max(p.interval/time.Duration(n), time.Millisecond)
	tk := time.NewTicker(slot)
	defer tk.Stop()
	for k := 0; ; k++ {
		i := k % n
		if probers[i] == nil {
			pr, err := p.newProber(p.probes[i], p.bind)
			if err != nil {
				// E.g. the interface is missing: report the slot as
				// failed and try again next time.
				now := time.Now()
				send(probeResult{target: i, sent: now, at: now, err: fmt.Errorf("open prober: %w", err)})
			} else {
				probers[i] = pr
			}
		}
		if pr := probers[i]; pr != nil {
			to := time.Duration(p.timeout[i].Load())
			inflight.Go(func() {
				sent := time.Now()
				rtt, err := pr.Probe(ctx, to)
				if ctx.Err() != nil {
					return
				}
				send(probeResult{target: i, sent: sent, at: time.Now(), rtt: rtt, err: err})
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// countLoop samples the interface's byte counters every period.
func (m *Monitor) countLoop(ctx context.Context, name, iface string, gen uint64, every time.Duration) {
	h, err := netlink.NewHandle()
	if err != nil {
		m.log.Error("cannot read interface counters", "link", name, "err", err)
		return
	}
	defer h.Close()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		lk, err := h.LinkByName(iface)
		if err != nil || lk.Attrs().Statistics == nil {
			continue
		}
		st := lk.Attrs().Statistics
		select {
		case m.msgs <- linkMsg{link: name, gen: gen, count: &countMsg{at: time.Now(), rx: st.RxBytes, tx: st.TxBytes}}:
		case <-ctx.Done():
			return
		}
	}
}

// readInterface reads the link's interface once: carrier and addresses.
// The watcher keeps both up to date afterwards.
func (m *Monitor) readInterface(now time.Time, l *linkRun) {
	lk, err := netlink.LinkByName(l.iface)
	if err != nil {
		l.setCarrier(now, false, fmt.Sprintf("interface %s not found", l.iface))
		return
	}
	up, why := carrierOf(lk.Attrs().RawFlags, lk.Attrs().OperState, l.iface)
	l.setCarrier(now, up, why)
	v4, v6 := listAddrs(lk)
	l.learned = addrMsg{v4: v4, v6: v6}
}

// learnAddrs takes the interface's current addresses; when the binding of
// the probes changes, probing restarts bound to the new addresses.
func (m *Monitor) learnAddrs(l *linkRun, a addrMsg) {
	l.learned = a
	b := m.binding(l)
	if b == l.bind || l.cancel == nil {
		return
	}
	m.log.Info("link addresses changed: rebinding probes", "link", l.name, "interface", l.iface,
		"source4", addrText(b.Source4), "source6", addrText(b.Source6))
	m.stopLink(l)
	m.startLink(l)
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

// listAddrs returns the addresses of an interface that can source
// traffic (ifwatch.SourceAddrs).
func listAddrs(lk netlink.Link) (v4, v6 []netip.Addr) {
	v4, _ = ifwatch.SourceAddrs(nil, lk, 4)
	v6, _ = ifwatch.SourceAddrs(nil, lk, 6)
	return v4, v6
}

// apply installs a new config (Update), in the loop goroutine.
func (m *Monitor) apply(cfg *config.Config) {
	now := time.Now()
	oldCfg := m.cfg
	m.cfg = cfg
	var links []*linkRun
	for i, lc := range cfg.Links {
		l := m.link(lc.Name)
		if l == nil {
			l = &linkRun{linkState: newLinkState(cfg, lc, now), index: i}
			m.log.Info("link added", "link", l.name, "interface", l.iface)
			if !m.noNetlink {
				m.readInterface(now, l)
			}
			m.startLink(l)
			links = append(links, l)
			continue
		}
		old := l.cfg
		oldS := l.s
		oldIndex := l.index
		l.index = i
		l.configure(cfg, lc)
		restart := old.Interface != lc.Interface || !slices.Equal(old.Probes, lc.Probes) ||
			old.Address4 != lc.Address4 || old.Address6 != lc.Address6 ||
			!slices.Equal(old.Resolvers, lc.Resolvers) ||
			oldS.interval != l.s.interval || oldS.sample != l.s.sample ||
			linkMark(oldCfg, oldIndex) != linkMark(cfg, i)
		if old.Interface != lc.Interface {
			l.carrierKnown, l.carrier = false, true
			if !m.noNetlink {
				m.readInterface(now, l)
			}
		}
		if restart {
			m.log.Info("link config changed: restarting its probes", "link", l.name, "interface", l.iface)
			m.stopLink(l)
			m.startLink(l)
		}
		links = append(links, l)
	}
	for _, l := range m.links {
		if !slices.Contains(links, l) {
			m.log.Info("link removed", "link", l.name, "interface", l.iface)
			m.stopLink(l)
		}
	}
	m.links = links
	m.publishSnapshot()
	for _, l := range m.links {
		m.flush(l)
	}
}
