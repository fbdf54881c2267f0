package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ifwatch"
)

// Learned addresses: a link whose address4 or address6 is not set in the
// config uses the address its interface has. addrSub reads them at start
// and again whenever the monitor's netlink subscription reports a link or
// address change (Monitor.InterfaceChanges); every change
// re-applies the config in force with them filled in (Daemon.withLearned),
// as a reload would, so DNS "self" records, outbound SNAT and source
// rules, probes' source addresses and the status follow.

// learnedAddr is what the interface of one link has.
type learnedAddr struct {
	v4, v6 netip.Addr
}

// addrSub learns the links' addresses from their interfaces.
type addrSub struct {
	log *slog.Logger
	// read lists an interface's usable addresses of one family (4 or 6),
	// in the kernel's order; netlinkAddrs but for tests.
	read func(iface string, family int) ([]netip.Addr, error)
	// apply re-applies the config in force; set by the daemon, called
	// from Run's goroutine only.
	apply func()
	// changes wakes Run when links or addresses changed; set by the
	// daemon (the monitor's InterfaceChanges). Nil: only the periodic
	// re-read.
	changes func() (<-chan struct{}, func())

	refreshMu sync.Mutex // one refresh at a time
	mu        sync.Mutex
	cfg       *config.Config
	learned   map[string]learnedAddr // by link name
	kick      chan struct{}
}

func newAddrSub(cfg *config.Config, log *slog.Logger, read func(string, int) ([]netip.Addr, error)) *addrSub {
	return &addrSub{log: log, read: read, cfg: cfg, learned: map[string]learnedAddr{}, kick: make(chan struct{}, 1)}
}

// Learned returns the addresses learned, by link.
func (s *addrSub) Learned() map[string]learnedAddr {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]learnedAddr, len(s.learned))
	for k, v := range s.learned {
		m[k] = v
	}
	return m
}

// Update does nothing: the daemon hands addrSub the file's config itself
// (setConfig), not the one with the learned addresses filled in.
func (s *addrSub) Update(*config.Config) error { return nil }

// setConfig takes the file's config (a reload may have renamed an
// interface or unset an address) and re-reads the interfaces.
func (s *addrSub) setConfig(cfg *config.Config) {
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.refresh()
}

func (s *addrSub) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run re-reads the interfaces whenever the monitor reports a link or
// address change (changes), and every 30 seconds in case a change went
// unreported, until ctx is done.
func (s *addrSub) Run(ctx context.Context) error {
	var changes <-chan struct{}
	if s.changes != nil {
		ch, cancel := s.changes()
		defer cancel()
		changes = ch
	}
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
			// Let a burst (address replaced: delete then add) settle.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(50 * time.Millisecond):
			}
		case <-s.kick:
		case <-tick.C:
		}
		if s.refresh() && s.apply != nil {
			s.apply()
		}
	}
}

// refresh re-reads the interfaces of the links that need an address
// learned and reports whether anything changed. An address already
// learned is kept while the interface still has it (no flapping between
// two addresses); otherwise the first in the kernel's order is taken.
func (s *addrSub) refresh() bool {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.mu.Lock()
	cfg := s.cfg
	old := s.learned
	s.mu.Unlock()
	next := map[string]learnedAddr{}
	for _, l := range cfg.Links {
		var la learnedAddr
		prev := old[l.Name]
		if !l.Address4.IsValid() {
			la.v4 = s.pick(l, 4, prev.v4)
		}
		if !l.Address6.IsValid() {
			la.v6 = s.pick(l, 6, prev.v6)
		}
		if la != (learnedAddr{}) {
			next[l.Name] = la
		}
		if la != prev {
			s.log.Info("link address learned from its interface", "link", l.Name, "interface", l.Interface,
				"address4", addrOrNone(la.v4, l.Address4), "address6", addrOrNone(la.v6, l.Address6))
		}
	}
	changed := len(next) != len(old)
	for k, v := range next {
		if old[k] != v {
			changed = true
		}
	}
	s.mu.Lock()
	s.learned = next
	s.mu.Unlock()
	return changed
}

func addrOrNone(learned, configured netip.Addr) string {
	switch {
	case configured.IsValid():
		return configured.String() + " (configured)"
	case learned.IsValid():
		return learned.String()
	}
	return "none yet"
}

func (s *addrSub) pick(l config.Link, family int, prev netip.Addr) netip.Addr {
	addrs, err := s.read(l.Interface, family)
	if err != nil {
		s.log.Debug("reading the interface's addresses", "link", l.Name, "interface", l.Interface, "err", err)
		return netip.Addr{}
	}
	if prev.IsValid() && slices.Contains(addrs, prev) {
		return prev
	}
	if len(addrs) == 0 {
		return netip.Addr{}
	}
	return addrs[0]
}

// netlinkAddrs lists iface's addresses of one family that can source
// traffic (ifwatch.SourceAddrs).
func netlinkAddrs(iface string, family int) ([]netip.Addr, error) {
	lk, err := netlink.LinkByName(iface)
	if err != nil {
		return nil, err
	}
	return ifwatch.SourceAddrs(nil, lk, family)
}

// withAddrs returns cfg with the learned addresses filled into the links
// that do not configure theirs (a copy; cfg stays as is).
func withAddrs(cfg *config.Config, learned map[string]learnedAddr) *config.Config {
	if len(learned) == 0 {
		return cfg
	}
	c := *cfg
	c.Links = slices.Clone(cfg.Links)
	for i := range c.Links {
		l := &c.Links[i]
		la := learned[l.Name]
		if !l.Address4.IsValid() {
			l.Address4 = la.v4
		}
		if !l.Address6.IsValid() {
			l.Address6 = la.v6
		}
	}
	return &c
}

// reportMissing logs, once per change, every use of an address that is
// not known: a DNS "self" record on a link whose interface has no such
// address (yet); the status shows them (Snapshot).
func (d *Daemon) reportMissing(cfg *config.Config) {
	out := config.SelfAddressNeeds(cfg)
	d.mu.Lock()
	same := slices.Equal(out, d.missing)
	d.missing = out
	d.mu.Unlock()
	if same {
		return
	}
	const most = 20 // a zone of many names on one link: a sample is enough
	for i, n := range out {
		if i == most {
			d.log.Warn("address not known yet: more uses", "more", len(out)-most)
			break
		}
		d.log.Warn("address not known yet", "need", n.String())
	}
}
