package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/nft"
	"github.com/multihome/multihome/route"
)

var allNodes = netip.MustParseAddr("ff02::1")
var allRouters = netip.MustParseAddr("ff02::2")

// Options tune an Advertiser for tests.
type Options struct {
	// Handle is the netlink handle for addresses and rules (nil: the
	// process's namespace).
	Handle *netlink.Handle
	// Enter runs fn where the LAN interface lives (nil: run it here), to
	// open the NDP socket there.
	Enter func(fn func() error) error
	// NFT runs nft (nil: nft.Command("nft")), for the nptv6 table.
	NFT nft.Runner
	// Routes writes the source rules (nil: a route.Manager of its own on
	// Handle); the daemon shares one between all owners of rules/routes.
	Routes *route.Manager
}

// Advertiser is the IPv6 LAN subsystem: RAs, source rules, addresses.
type Advertiser struct {
	log  *slog.Logger
	src  monitor.Source
	opts Options
	h    *netlink.Handle
	// routes writes the source rules, in the RA owner's lease.
	routes *route.Manager

	mu      sync.Mutex
	cfg     *config.Config
	usable  map[string]bool
	retired map[netip.Prefix]retired
	added   map[netip.Prefix]bool // gateway addresses we added
	rules   []Rule                // rules we installed
	sent    int                   // advertisements sent
	active  string                // nptv6: the link new flows use
	npt     *nft.Table
	nptOn   bool // the nptv6 table was applied
	sets    *setSyncer
	// standby is set while this gateway is the standby node of an HA
	// pair (SetStandby): its advertisements carry router lifetime 0.
	standby bool

	kick chan struct{}
}

// SetStandby makes the advertiser the standby router of an HA pair (ha
// package): its advertisements keep the prefixes, so the hosts' addresses
// stay, but carry router lifetime 0, so the hosts route through the
// master only. Back to false (this node became master), a full
// advertisement goes out at once.
func (a *Advertiser) SetStandby(standby bool) {
	a.mu.Lock()
	changed := a.standby != standby
	a.standby = standby
	a.mu.Unlock()
	if !changed {
		return
	}
	if standby {
		a.log.Info("ha standby: advertising router lifetime 0, prefixes kept")
	} else {
		a.log.Info("ha master: advertising as the LAN's router")
	}
	a.poke()
}

// New returns an Advertiser for cfg (which must have an ipv6 section).
func New(cfg *config.Config, src monitor.Source, log *slog.Logger, opts Options) (*Advertiser, error) {
	if cfg.IPv6 == nil {
		return nil, errors.New("no ipv6 section")
	}
	h := opts.Handle
	if h == nil {
		h = &netlink.Handle{}
	}
	run := opts.NFT
	if run == nil {
		run = nft.Command("nft")
	}
	routes := opts.Routes
	if routes == nil {
		routes = route.NewManager(h)
	}
	return &Advertiser{log: log, src: src, opts: opts, h: h, routes: routes, cfg: cfg, usable: map[string]bool{},
		retired: map[netip.Prefix]retired{}, added: map[netip.Prefix]bool{}, kick: make(chan struct{}, 1),
		// nptOn: a table left by a killed run is deleted by the first sync
		// in sadr mode (a missing table is not an error).
		npt: nft.NewTable(run, NPTFamily, NPTTable), nptOn: true, sets: newSetSyncer(run, log)}, nil
}

// Sent returns how many advertisements were sent.
func (a *Advertiser) Sent() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent
}

func (a *Advertiser) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Update applies a new config: prefixes removed are retired (advertised
// with zero lifetimes for ipv6.ra.retire), new ones advertised, addresses
// and rules follow, and an advertisement goes out at once.
func (a *Advertiser) Update(cfg *config.Config) error {
	if cfg.IPv6 == nil {
		return errors.New("the ipv6 section was removed: restart multihome to apply that")
	}
	a.mu.Lock()
	old := a.cfg
	if old.IPv6.LAN != cfg.IPv6.LAN {
		a.mu.Unlock()
		return fmt.Errorf("ipv6.lan changed from %s to %s: restart multihome to apply that", old.IPv6.LAN, cfg.IPv6.LAN)
	}
	now := time.Now()
	for _, p := range old.IPv6.Advertised() {
		if !slices.ContainsFunc(cfg.IPv6.Advertised(), func(q config.IPv6Prefix) bool { return q.Prefix == p.Prefix }) {
			a.retired[p.Prefix] = retired{link: p.Link, until: now.Add(cfg.IPv6.RA.Retire.D())}
			a.log.Info("prefix retired: advertised with zero lifetimes", "prefix", p.Prefix, "link", p.Link, "for", cfg.IPv6.RA.Retire.D())
		}
	}
	for _, p := range cfg.IPv6.Advertised() {
		delete(a.retired, p.Prefix)
	}
	a.cfg = cfg
	err := a.syncLocked()
	a.mu.Unlock()
	a.poke()
	return err
}

// syncLocked makes the gateway addresses and source rules match the
// config. Addresses of retired prefixes are removed at once: the prefix is
// no longer the site's. The firewall sets follow too; their errors are
// logged and counted, not returned (sets.go).
func (a *Advertiser) syncLocked() error {
	err := errors.Join(a.syncAddrs(), a.syncNPT(), a.syncRules())
	a.syncSets(true)
	return err
}

// syncNPT applies (nptv6) or deletes (sadr) the prefix translation table.
func (a *Advertiser) syncNPT() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if a.cfg.IPv6.Mode != config.IPv6ModeNPTv6 {
		if !a.nptOn {
			return nil
		}
		a.nptOn = false
		return a.npt.Delete(ctx)
	}
	a.active = Active(a.cfg.IPv6, func(l string) bool { return a.usable[l] }, a.active)
	if err := a.npt.Apply(ctx, NPTRuleset(a.cfg), nil); err != nil {
		return fmt.Errorf("nptv6 table: %w", err)
	}
	a.nptOn = true
	return nil
}

func (a *Advertiser) lanLink() (netlink.Link, error) {
	l, err := a.h.LinkByName(a.cfg.IPv6.LAN)
	if err != nil {
		return nil, fmt.Errorf("ipv6.lan %s: %w", a.cfg.IPv6.LAN, err)
	}
	return l, nil
}

func (a *Advertiser) syncAddrs() error {
	l, err := a.lanLink()
	if err != nil {
		return err
	}
	have, err := a.h.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	present := func(p netip.Prefix) bool {
		return slices.ContainsFunc(have, func(x netlink.Addr) bool {
			ip, _ := netip.AddrFromSlice(x.IP)
			return ip == p.Addr()
		})
	}
	want := map[netip.Prefix]bool{}
	var errs []error
	for _, p := range a.cfg.IPv6.Advertised() {
		gp := GatewayAddr(p.Prefix)
		want[gp] = true
		if present(gp) {
			continue
		}
		if err := a.h.AddrAdd(l, &netlink.Addr{IPNet: ipnet(gp)}); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add %s to %s: %w", gp, a.cfg.IPv6.LAN, err))
			continue
		}
		a.added[gp] = true
		a.log.Info("gateway address added", "addr", gp, "dev", a.cfg.IPv6.LAN)
	}
	for gp := range a.added {
		if want[gp] {
			continue
		}
		if err := a.h.AddrDel(l, &netlink.Addr{IPNet: ipnet(gp)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", gp, a.cfg.IPv6.LAN, err))
			continue
		}
		delete(a.added, gp)
		a.log.Info("gateway address removed", "addr", gp, "dev", a.cfg.IPv6.LAN)
	}
	return errors.Join(errs...)
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// UseRoutes makes the advertiser write its source rules through m, the
// route manager the daemon shares between all owners. Call it before Run.
func (a *Advertiser) UseRoutes(m *route.Manager) error {
	a.routes = m
	return nil
}

// syncRules makes the rules at ipv6.rule_priority and +1 equal to Rules:
// multihome owns those two priorities (the RA owner's lease of the route
// manager; a reload that moves them moves the lease, which removes what
// was at the old ones).
func (a *Advertiser) syncRules() error {
	want := Rules(a.cfg, route.SchemeFor(a.cfg), a.active)
	if err := a.routes.Lease(route.RA, route.RuleLease(6, a.cfg.IPv6.RulePriority, 2)); err != nil {
		return err
	}
	st := route.State{}
	for _, r := range want {
		st.Rules = append(st.Rules, r.routeRule())
	}
	_, err := a.routes.Set(route.RA, st)
	var failed []route.Rule
	var se *route.SetError
	if errors.As(err, &se) {
		failed = se.Rules
	}
	for _, r := range want {
		if !slices.Contains(a.rules, r) && !slices.Contains(failed, r.routeRule()) {
			a.log.Info("source rule added", "pref", r.Priority, "from", r.Src, "table", r.Table, "suppress", r.Suppress)
		}
	}
	a.rules = want
	return err
}

// routeRule is r as the route manager writes it.
func (r Rule) routeRule() route.Rule {
	return route.Rule{Family: 6, Priority: r.Priority, Src: r.Src, Table: r.Table, Suppress: r.Suppress, Mask: r.Mask}
}

// clear removes the rules and addresses the advertiser added.
func (a *Advertiser) clear() error {
	var errs []error
	if err := a.routes.Release(route.RA); err != nil {
		errs = append(errs, err)
	}
	a.rules = nil
	if a.nptOn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.npt.Delete(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		a.nptOn = false
	}
	if l, err := a.lanLink(); err == nil {
		for gp := range a.added {
			if err := a.h.AddrDel(l, &netlink.Addr{IPNet: ipnet(gp)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("remove %s: %w", gp, err))
			}
		}
	} else {
		errs = append(errs, err)
	}
	clear(a.added)
	return errors.Join(errs...)
}

// State returns what the next advertisement says about each prefix.
func (a *Advertiser) State() []PrefixState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stateLocked(time.Now())
}

func (a *Advertiser) stateLocked(now time.Time) []PrefixState {
	var ps []PrefixState
	adv := a.cfg.IPv6.Advertised()
	n := len(adv)
	for _, p := range adv {
		// nptv6: the internal prefix stays preferred, the gateway moves
		// new flows to a working link.
		st := PrefixState{Link: p.Link, Prefix: p.Prefix, Usable: p.Link == "" || a.usable[p.Link]}
		if l := p.Learned; l != nil {
			st.Capped, st.ValidLeft, st.PreferredLeft = true, l.Valid.Sub(now), l.Preferred.Sub(now)
		}
		ps = append(ps, st)
	}
	for p, r := range a.retired {
		if now.After(r.until) {
			delete(a.retired, p)
			continue
		}
		ps = append(ps, PrefixState{Link: r.link, Prefix: p, Retired: true})
	}
	slices.SortStableFunc(ps[n:], func(x, y PrefixState) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	return ps
}

// listen opens the NDP socket on the LAN interface, retrying while its
// link-local address is not usable yet.
func (a *Advertiser) listen(ctx context.Context) (*ndp.Conn, error) {
	enter := a.opts.Enter
	if enter == nil {
		enter = func(fn func() error) error { return fn() }
	}
	lan := a.cfg.IPv6.LAN
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		var c *ndp.Conn
		err := enter(func() error {
			ifi, err := net.InterfaceByName(lan)
			if err != nil {
				return err
			}
			c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
			if err != nil {
				return err
			}
			if err := c.JoinGroup(allRouters); err != nil {
				c.Close()
				return err
			}
			var f ipv6.ICMPFilter
			f.SetAll(true)
			f.Accept(ipv6.ICMPTypeRouterSolicitation)
			if err := c.SetICMPFilter(&f); err != nil {
				c.Close()
				return err
			}
			return nil
		})
		if err == nil {
			return c, nil
		}
		a.log.Warn("cannot open the NDP socket yet", "dev", lan, "err", err, "retry", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Run advertises until ctx is cancelled, then sends a final advertisement
// (router lifetime 0) and removes the rules and addresses it added.
func (a *Advertiser) Run(ctx context.Context) error {
	events, unsubscribe := a.src.Subscribe()
	defer unsubscribe()
	a.mu.Lock()
	for _, st := range a.src.Snapshot() {
		a.usable[st.Link] = st.AcceptsNew()
	}
	err := a.syncLocked()
	a.mu.Unlock()
	if err != nil {
		a.log.Error("ipv6 setup incomplete", "err", err)
	}
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if err := a.clear(); err != nil {
			a.log.Error("ipv6 cleanup", "err", err)
		}
	}()

	conn, err := a.listen(ctx)
	if err != nil {
		return nil // cancelled while waiting
	}
	defer conn.Close()

	go a.readSolicitations(conn)

	a.send(conn, true)
	a.mu.Lock()
	interval := a.cfg.IPv6.RA.Interval.D()
	a.mu.Unlock()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			a.send(conn, false)
			return nil
		case e, ok := <-events:
			if !ok {
				return nil
			}
			if a.linkEvent(e) {
				a.send(conn, true)
				last = time.Now()
			}
		case <-a.kick:
			if time.Since(last) < 100*time.Millisecond {
				time.Sleep(100*time.Millisecond - time.Since(last))
			}
			a.mu.Lock()
			if d := a.cfg.IPv6.RA.Interval.D(); d != interval {
				interval = d
				tick.Reset(d)
			}
			a.mu.Unlock()
			a.send(conn, true)
			last = time.Now()
		case <-tick.C:
			a.send(conn, true)
			last = time.Now()
			// Firewall sets: retired prefixes leave when their retire
			// period ends, failed sets are retried, and sets are re-read
			// now and then (sets.go).
			a.mu.Lock()
			a.syncSets(false)
			a.mu.Unlock()
		}
	}
}

// readSolicitations answers router solicitations with a multicast
// advertisement (RFC 4861 6.2.6), at most one per 100 ms burst through the
// kick channel, until conn is closed.
func (a *Advertiser) readSolicitations(conn *ndp.Conn) {
	for {
		m, _, from, err := conn.ReadFrom()
		if err != nil {
			return
		}
		if _, ok := m.(*ndp.RouterSolicitation); ok {
			a.log.Debug("router solicitation", "from", from)
			a.poke()
		}
	}
}

// send multicasts an advertisement of the current prefixes; router false
// (or standby) advertises a router lifetime of 0.
func (a *Advertiser) send(conn *ndp.Conn, router bool) {
	a.mu.Lock()
	ps := a.stateLocked(time.Now())
	m := Advertisement(a.cfg.IPv6, ps, router && !a.standby)
	a.mu.Unlock()
	if err := conn.WriteTo(m, nil, allNodes); err != nil {
		a.log.Warn("sending router advertisement", "err", err)
		return
	}
	a.mu.Lock()
	a.sent++
	a.mu.Unlock()
}

// linkEvent records whether a link accepts new flows and says whether an
// advertisement must go out now: in mode nptv6 it moves new flows to
// another link instead, and advertises nothing.
func (a *Advertiser) linkEvent(e monitor.Event) bool {
	// A prefix is preferred while its link accepts new flows: up or
	// degraded, and not drained by the operator.
	u := e.Status.AcceptsNew()
	a.mu.Lock()
	was, known := a.usable[e.Link]
	a.usable[e.Link] = u
	has := len(a.cfg.IPv6.LinkPrefixes(e.Link)) > 0
	var err error
	if has && a.cfg.IPv6.Mode == config.IPv6ModeNPTv6 && (!known || was != u) {
		if act := Active(a.cfg.IPv6, func(l string) bool { return a.usable[l] }, a.active); act != a.active {
			a.log.Info("nptv6: new flows now leave by another link", "link", act, "was", a.active)
			a.active = act
			err = a.syncRules()
		}
		a.mu.Unlock()
		if err != nil {
			a.log.Error("nptv6 rules", "err", err)
		}
		return false
	}
	a.mu.Unlock()
	if has && (!known || was != u) {
		if u {
			a.log.Info("link accepts new flows: its prefixes preferred again", "link", e.Link)
		} else {
			a.log.Info("link down or drained: its prefixes deprecated (preferred lifetime 0)", "link", e.Link, "state", e.Status.State, "admin", e.Status.Admin)
		}
		return true
	}
	return false
}
