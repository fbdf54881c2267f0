package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/pd"
)

// DHCPv6 prefix delegation runs with the ipv6 section: one client per
// link that has an ipv6.prefixes entry with dhcpv6_pd (none, then, until
// a reload adds one). Every lease change re-applies the config in force
// with the learned prefixes filled in (Daemon.withLearned), as a reload
// would: RAs, source rules, gateway addresses, DNS follow.
func init() {
	builders = append(builders, builder{"pd", func(cfg *config.Config, _ monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.IPv6 == nil {
			return nil, nil
		}
		s := &pdSub{log: log.With("subsystem", "pd"), cfg: cfg, clients: map[string]*pdClient{}, learned: map[string]pd.Lease{},
			routers: map[string]*pdRouter{}, gateways: map[string]netip.Addr{}, kick: make(chan struct{}, 1)}
		return s, reg.Register(pd.Collector(s.list))
	}})
}

// pdSub runs the DHCPv6-PD clients and keeps the leases they hold.
type pdSub struct {
	log *slog.Logger
	// apply re-applies the config in force with the learned prefixes; set
	// by the daemon, called from Run's goroutine only (never from Update,
	// which a reload calls).
	apply func()

	mu      sync.Mutex
	cfg     *config.Config
	ctx     context.Context // Run's, nil before Run
	clients map[string]*pdClient
	learned map[string]pd.Lease // by link: the delegations held
	// routers watch the WAN's router advertisements of the links with a
	// dhcpv6_pd entry and no gateway6 configured; gateways are what they
	// learned, filled in as the links' gateway6 (withPD).
	routers  map[string]*pdRouter
	gateways map[string]netip.Addr
	wg       sync.WaitGroup

	kick chan struct{}
}

type pdClient struct {
	c      *pd.Client
	iface  string
	length int
	rapid  bool
	cancel context.CancelFunc
	done   chan struct{} // closed when its Run returned
}

type pdRouter struct {
	iface  string
	cancel context.CancelFunc
}

// pdStateFile is where link's lease is kept across restarts.
func pdStateFile(dir, link string) string { return filepath.Join(dir, "dhcpv6-pd-"+link+".json") }

func (s *pdSub) list() []*pd.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*pd.Client, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c.c)
	}
	slices.SortFunc(cs, func(a, b *pd.Client) int { return strings.Compare(a.Link(), b.Link()) })
	return cs
}

// Gateways returns the gateway6 learned from router advertisements, by
// link.
func (s *pdSub) Gateways() map[string]netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]netip.Addr, len(s.gateways))
	for k, v := range s.gateways {
		m[k] = v
	}
	return m
}

// Learned returns the delegations held, by link.
func (s *pdSub) Learned() map[string]pd.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]pd.Lease, len(s.learned))
	for k, v := range s.learned {
		m[k] = v
	}
	return m
}

func (s *pdSub) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run starts the clients, re-applies the config on every lease change
// and, when ctx ends, stops the clients (each releases its prefix).
func (s *pdSub) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.syncLocked()
	s.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-s.kick:
			if s.apply != nil {
				s.apply()
			}
		}
	}
}

// Update starts and stops clients to match the config.
func (s *pdSub) Update(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
	if s.ctx != nil {
		s.syncLocked()
	}
	return nil
}

func (s *pdSub) syncLocked() {
	want := map[string]config.IPv6PDLink{}
	if s.cfg.IPv6 != nil {
		for _, l := range s.cfg.IPv6.PDLinks() {
			want[l.Link] = l
		}
	}
	prev := map[string]chan struct{}{}
	for link, c := range s.clients {
		w, ok := want[link]
		l := s.cfg.LinkByName(link)
		if ok && l != nil && l.Interface == c.iface && w.Length == c.length && w.RapidCommit == c.rapid {
			continue
		}
		c.cancel()
		prev[link] = c.done
		delete(s.clients, link)
		if ok && l != nil && l.Interface == c.iface && w.Length == c.length {
			// Only rapid_commit changed: the new client restores the lease
			// the old one keeps, so the LAN prefix stays.
			s.log.Info("dhcpv6-pd client restarted", "link", link, "rapid_commit", w.RapidCommit)
			continue
		}
		// That delegation is no longer wanted: give it back and forget it
		// (a stop of the daemon keeps it instead).
		c.c.Drop()
		if _, held := s.learned[link]; held {
			delete(s.learned, link)
			s.poke()
		}
		s.log.Info("dhcpv6-pd client stopped", "link", link)
	}
	s.syncRoutersLocked(want)
	if s.ctx.Err() != nil {
		return // stopping: Run waits for the clients
	}
	for link, w := range want {
		l := s.cfg.LinkByName(link)
		if _, ok := s.clients[link]; ok || l == nil {
			continue
		}
		pc := &pdClient{iface: l.Interface, length: w.Length, rapid: w.RapidCommit, done: make(chan struct{})}
		pc.c = pd.New(link, l.Interface, w.Length, func(lease pd.Lease) { s.report(pc, lease) }, s.log,
			pd.Options{StateFile: pdStateFile(s.cfg.IPv6.StateDir, link), RapidCommit: w.RapidCommit})
		ctx, cancel := context.WithCancel(s.ctx)
		pc.cancel = cancel
		s.clients[link] = pc
		s.wg.Add(1)
		old := prev[link]
		go func() {
			defer s.wg.Done()
			defer close(pc.done)
			if old != nil {
				<-old // the client it replaces has released (or kept) the state file
			}
			pc.c.Run(ctx)
		}()
		s.log.Info("dhcpv6-pd client started", "link", link, "dev", l.Interface, "length", w.Length, "rapid_commit", w.RapidCommit)
	}
}

// syncRoutersLocked watches router advertisements on the interface of
// every link in want whose gateway6 is not configured (absent, or the one
// learned: s.cfg is the config applied, learned values filled in).
func (s *pdSub) syncRoutersLocked(want map[string]config.IPv6PDLink) {
	learn := map[string]string{} // link → interface
	for link := range want {
		if l := s.cfg.LinkByName(link); l != nil && (!l.Gateway6.IsValid() || (s.routers[link] != nil && l.Gateway6 == s.gateways[link])) {
			learn[link] = l.Interface
		}
	}
	for link, r := range s.routers {
		if learn[link] == r.iface && s.ctx.Err() == nil {
			continue
		}
		r.cancel()
		delete(s.routers, link)
		if _, ok := s.gateways[link]; ok {
			delete(s.gateways, link)
			s.poke()
		}
	}
	if s.ctx.Err() != nil {
		return
	}
	for link, iface := range learn {
		if s.routers[link] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		r := &pdRouter{iface: iface, cancel: cancel}
		s.routers[link] = r
		w := pd.NewRouter(iface, nil, func(a netip.Addr) { s.reportRouter(link, r, a) }, s.log.With("link", link))
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.Run(ctx)
		}()
		s.log.Info("gateway6 not configured: learning it from router advertisements", "link", link, "dev", iface)
	}
}

// reportRouter is a router watcher's callback, like report.
func (s *pdSub) reportRouter(link string, r *pdRouter, a netip.Addr) {
	s.mu.Lock()
	if s.routers[link] != r {
		s.mu.Unlock()
		return
	}
	if a.IsValid() {
		s.gateways[link] = a
	} else {
		delete(s.gateways, link)
	}
	s.mu.Unlock()
	s.poke()
}

// report is a client's callback: it records the lease and has Run
// re-apply the config (never synchronously: the client's goroutine must
// not wait on a reload, which calls Update).
func (s *pdSub) report(pc *pdClient, l pd.Lease) {
	s.mu.Lock()
	if s.clients[l.Link] != pc {
		s.mu.Unlock()
		return // a client being stopped
	}
	if l.Lost {
		delete(s.learned, l.Link)
	} else {
		s.learned[l.Link] = l
	}
	s.mu.Unlock()
	s.poke()
}

// withPD returns cfg with the learned prefixes filled into its
// dhcpv6_pd entries (a copy; cfg itself is the file's and stays as is).
// A learned /64 that the delegation cannot hold or that overlaps another
// prefix is left out, with a warning.
func (d *Daemon) withPD(cfg *config.Config) *config.Config {
	if cfg.IPv6 == nil || d.pd == nil {
		return cfg
	}
	learned := d.pd.Learned()
	c := *cfg
	if gws := d.pd.Gateways(); len(gws) > 0 {
		c.Links = slices.Clone(cfg.Links)
		for i := range c.Links {
			if gw, ok := gws[c.Links[i].Name]; ok && !c.Links[i].Gateway6.IsValid() {
				c.Links[i].Gateway6 = gw
			}
		}
	}
	v := *cfg.IPv6
	v.Prefixes = slices.Clone(cfg.IPv6.Prefixes)
	c.IPv6 = &v
	for i := range v.Prefixes {
		p := &v.Prefixes[i]
		if p.DHCPv6PD == nil {
			continue
		}
		l, ok := learned[p.Link]
		if !ok {
			continue
		}
		lan, err := config.PDSubnet(l.Prefix, p.DHCPv6PD.Subnet)
		if err != nil {
			d.log.Warn("delegated prefix not used", "subsystem", "pd", "link", p.Link, "entry", i, "err", err)
			continue
		}
		if j := slices.IndexFunc(v.Prefixes, func(q config.IPv6Prefix) bool { return q.Prefix.IsValid() && q.Prefix.Overlaps(lan) }); j >= 0 {
			d.log.Warn("delegated prefix not used: it overlaps another LAN prefix", "subsystem", "pd", "link", p.Link, "prefix", lan, "other", v.Prefixes[j].Prefix)
			continue
		}
		if v.Mode == config.IPv6ModeNPTv6 && v.Internal.Overlaps(lan) {
			d.log.Warn("delegated prefix not used: it overlaps ipv6.internal", "subsystem", "pd", "link", p.Link, "prefix", lan)
			continue
		}
		p.Prefix = lan
		p.Learned = &config.LearnedPrefix{Delegated: l.Prefix, Preferred: l.Preferred, Valid: l.Valid}
	}
	return &c
}
