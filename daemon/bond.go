package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/bond"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/dialer"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/route"
)

// The bond proxy runs when the config has a bond section.
func init() {
	optional["bond"] = func(c *config.Config) bool { return c.Bond != nil }
	builders = append(builders, builder{"bond", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.Bond == nil {
			return nil, nil
		}
		s := &bondSub{src: src, cfg: cfg, log: log.With("subsystem", "bond")}
		opts, err := s.options(cfg)
		if err != nil {
			return nil, err
		}
		s.proxy = bond.NewProxy(opts, s.linkOf, s.log)
		return s, registerAll(reg, s.proxy.Collectors())
	}})
}

// bondSub runs the bond proxy: it listens for the connections the
// outbound ruleset redirects (bond policies) and carries them to the
// aggregator, or through the rule's fallback policy while the aggregator
// is unreachable.
type bondSub struct {
	src   monitor.Source
	log   *slog.Logger
	proxy *bond.Proxy

	mu  sync.Mutex
	cfg *config.Config
}

func (s *bondSub) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func (s *bondSub) options(cfg *config.Config) (bond.ProxyOptions, error) {
	key, err := cfg.BondKey()
	if err != nil {
		return bond.ProxyOptions{}, fmt.Errorf("bond key: %w", err)
	}
	b := cfg.Bond
	return bond.ProxyOptions{Aggregator: b.Aggregator, Key: key, MaxConns: b.MaxConns, DialTimeout: b.DialTimeout.D(),
		IdleTimeout: b.IdleTimeout.D(), CheckInterval: b.CheckInterval.D(), Fallback: s.fallback, Links: s.links}, nil
}

// links are the links that take new flows, best first (priority, then
// weight), with their addresses: the sources the proxy's connections to
// the aggregator start from.
func (s *bondSub) links() []dialer.Link {
	cfg := s.config()
	status := map[string]monitor.Status{}
	for _, st := range s.src.Snapshot() {
		status[st.Link] = st
	}
	var out []dialer.Link
	var order []config.Link
	for _, l := range cfg.Links {
		if status[l.Name].AcceptsNew() {
			order = append(order, l)
		}
	}
	slices.SortStableFunc(order, func(a, b config.Link) int {
		if a.Priority != b.Priority {
			return a.Priority - b.Priority
		}
		return b.Weight - a.Weight
	})
	for _, l := range order {
		dl := dialer.Link{Name: l.Name, Addr4: l.Address4, Addr6: l.Address6}
		if ifc, err := net.InterfaceByName(l.Interface); err == nil {
			addrs, _ := ifc.Addrs()
			for _, ad := range addrs {
				p, err := netip.ParsePrefix(ad.String())
				if err != nil || !p.Addr().IsGlobalUnicast() {
					continue
				}
				if a := p.Addr().Unmap(); a.Is4() && !dl.Addr4.IsValid() {
					dl.Addr4 = a
				} else if a.Is6() && !dl.Addr6.IsValid() {
					dl.Addr6 = a
				}
			}
		}
		if dl.Addr4.IsValid() || dl.Addr6.IsValid() {
			out = append(out, dl)
		}
	}
	return out
}

// Run listens on the proxy port (IPv4 and, if the host has it, IPv6).
func (s *bondSub) Run(ctx context.Context) error {
	port := s.config().Bond.Port
	ln4, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return fmt.Errorf("bond proxy: %w", err)
	}
	lns := []net.Listener{ln4}
	if ln6, err := net.Listen("tcp6", fmt.Sprintf("[::]:%d", port)); err == nil {
		lns = append(lns, ln6)
	} else {
		s.log.Warn("bond proxy: no IPv6 listener: IPv6 flows are not bonded", "err", err)
	}
	s.log.Info("bond proxy listening", "port", port, "aggregator", s.config().Bond.Aggregator)
	return s.proxy.Serve(ctx, lns...)
}

// Update applies a reloaded bond section; the port needs a restart.
func (s *bondSub) Update(cfg *config.Config) error {
	if cfg.Bond.Port != s.config().Bond.Port {
		return fmt.Errorf("bond.port changed: restart multihome to apply that")
	}
	opts, err := s.options(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	s.proxy.SetOptions(opts)
	return nil
}

// linkOf names the link whose address a is (configured or on its
// interface).
func (s *bondSub) linkOf(a netip.Addr) string {
	cfg := s.config()
	for _, l := range cfg.Links {
		if l.Address4 == a || l.Address6 == a {
			return l.Name
		}
		if ifc, err := net.InterfaceByName(l.Interface); err == nil {
			addrs, _ := ifc.Addrs()
			for _, ad := range addrs {
				if p, err := netip.ParsePrefix(ad.String()); err == nil && p.Addr() == a {
					return l.Name
				}
			}
		}
	}
	return ""
}

// fallback connects to dst directly through a link of the bond policy's
// fallback policy: its best tier of links that take new flows, picked by
// weight. The socket carries that link's mark, so the outbound rules
// route it there and leave it unsteered.
func (s *bondSub) fallback(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	cfg := s.config()
	o := cfg.EffectiveOutbound()
	name := o.DefaultPolicy
	for _, p := range o.Policies {
		if p.Type == config.PolicyBond {
			name = p.Fallback
			break
		}
	}
	var pol config.OutboundPolicy
	for _, p := range o.Policies {
		if p.Name == name {
			pol = p
		}
	}
	status := map[string]monitor.Status{}
	for _, st := range s.src.Snapshot() {
		status[st.Link] = st
	}
	best, total := -1, 0
	var members []int
	for _, l := range pol.Links {
		i := cfg.LinkIndex(l)
		if i < 0 || !status[l].AcceptsNew() {
			continue
		}
		prio := cfg.Links[i].Priority
		if pol.Type == config.PolicyFailover && best >= 0 && prio > best {
			continue
		}
		if pol.Type == config.PolicyFailover && (best < 0 || prio < best) {
			best, members, total = prio, nil, 0
		}
		members = append(members, i)
		total += max(cfg.Links[i].Weight, 1)
	}
	d := &net.Dialer{}
	if len(members) > 0 {
		r := rand.IntN(total)
		pick := members[0]
		for _, i := range members {
			if r -= max(cfg.Links[i].Weight, 1); r < 0 {
				pick = i
				break
			}
		}
		mark := route.SchemeFor(cfg).Mark(pick)
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark)) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d.DialContext(ctx, "tcp", dst.String())
}
