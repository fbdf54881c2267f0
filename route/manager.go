package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager reads and writes the policy routing of one network namespace
// through a netlink handle, for every owner, each inside its [Lease]. It
// is safe for concurrent use: owners call Set from their own goroutines
// and [Manager.Watch] repairs from its own; one mutex serialises them.
type Manager struct {
	mu      sync.Mutex
	h       *netlink.Handle
	owners  map[Owner]*owned
	seq     int
	repairs *prometheus.CounterVec
}

// owned is an owner's lease and the state it asked for last.
type owned struct {
	lease   Lease
	seq     int // when the lease was given: a newer lease wins an overlap
	desired State
	set     bool // desired was given: Watch re-applies it
}

// wants reports whether o's desired state has a rule or route in lease l.
func (o *owned) wants(l Lease) bool {
	for _, r := range o.desired.Rules {
		if l.ownsPriority(r.Family, r.Priority) {
			return true
		}
	}
	for _, r := range o.desired.Routes {
		if l.ownsTable(r.Table) && l.Protocol == o.lease.Protocol {
			return true
		}
	}
	return false
}

// NewManager returns a manager working through h (a handle created in the
// namespace to manage; nil means the process's own namespace).
func NewManager(h *netlink.Handle) *Manager {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &Manager{h: h, owners: map[Owner]*owned{}, repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "multihome_route_repairs_total",
		Help: "Rules and routes changed outside multihome and put back by the route manager's drift repair, by owner.",
	}, []string{"owner"})}
}

// Collector returns the manager's metrics.
func (m *Manager) Collector() prometheus.Collector { return m.repairs }

// Lease gives owner o the lease l. Leases are disjoint: one that overlaps
// another owner's where that owner wants a rule or route is refused. An
// overlap where it wants nothing is let through, the newer lease owning
// it: during a reload that moves both outbound's and ra's ranges, one
// moves before the other (the older lease is moved or released next).
// If o held another lease and has written in it, what it has there is
// removed first (a reload moved its ranges); its desired state is then
// empty until the next Set. Nothing touches the kernel before o's first
// Set.
func (m *Manager) Lease(o Owner, l Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for other, st := range m.owners {
		if other != o && st.lease.overlaps(l) && st.wants(l) {
			return fmt.Errorf("route: %s's lease (%s) overlaps %s's (%s)", o, l, other, st.lease)
		}
	}
	cur := m.owners[o]
	if cur != nil && cur.lease == l {
		return nil
	}
	var err error
	if cur != nil && cur.set {
		_, err = m.apply(o, cur.lease, State{})
	}
	m.seq++
	m.owners[o] = &owned{lease: l, seq: m.seq}
	return err
}

// yields reports whether o (with lease l) leaves a rule at priority p of
// family fam (route: table t, protocol proto; rule when t is 0) to a newer
// overlapping lease.
func (m *Manager) yields(o Owner, fam, p, t int, proto netlink.RouteProtocol) bool {
	mine := m.owners[o]
	for other, st := range m.owners {
		if other == o || mine == nil || st.seq < mine.seq {
			continue
		}
		if t == 0 && st.lease.ownsPriority(fam, p) {
			return true
		}
		if t != 0 && st.lease.ownsTable(t) && st.lease.Protocol == mine.lease.Protocol && (proto == st.lease.Protocol || st.lease.Protocol == 0) {
			return true
		}
	}
	return false
}

// Release removes what o has in its lease and gives the lease up (a
// subsystem that stops for good: a reload removed its section). A no-op
// for an owner without a lease.
func (m *Manager) Release(o Owner) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.owners[o]
	if !ok {
		return nil
	}
	_, err := m.apply(o, st.lease, State{})
	delete(m.owners, o)
	return err
}

// LeaseOf returns o's lease, if it has one.
func (m *Manager) LeaseOf(o Owner) (Lease, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.owners[o]
	if !ok {
		return Lease{}, false
	}
	return st.lease, true
}

type obsRule struct {
	r     Rule
	nl    netlink.Rule
	extra bool // has selectors we never set: foreign or tampered
}

type obsRoute struct {
	r     Route
	nl    netlink.Route
	extra bool
}

func family(f int) int {
	if f == 6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func ipnetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// foreignProtocols returns the route protocols that a Protocol-0 lease of
// o does not own: those of the other leases over its tables, and always
// ProtoBGP (the BGP owner's even when it runs with its own manager).
func (m *Manager) foreignProtocols(o Owner, l Lease) map[netlink.RouteProtocol]bool {
	f := map[netlink.RouteProtocol]bool{ProtoBGP: true}
	for other, st := range m.owners {
		if other != o && st.lease.Protocol != 0 {
			f[st.lease.Protocol] = true
		}
	}
	return f
}

// observe lists the rules and routes of lease l (owner o's).
func (m *Manager) observe(o Owner, l Lease) (rules []obsRule, routes []obsRoute, err error) {
	names := map[int]string{}
	foreign := m.foreignProtocols(o, l)
	for _, fam := range []int{4, 6} {
		if l.Priorities > 0 && (l.Family == 0 || l.Family == fam) {
			nrs, err := m.h.RuleList(family(fam))
			if err != nil {
				return nil, nil, fmt.Errorf("list ipv%d rules: %w", fam, err)
			}
			for _, nr := range nrs {
				if l.ownsPriority(fam, nr.Priority) && !m.yields(o, fam, nr.Priority, 0, 0) {
					rules = append(rules, observeRule(fam, nr))
				}
			}
		}
		if l.Tables == 0 {
			continue
		}
		nrts, err := m.h.RouteListFiltered(family(fam), &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, nil, fmt.Errorf("list ipv%d routes: %w", fam, err)
		}
		for _, nr := range nrts {
			if !l.ownsTable(nr.Table) || (l.Protocol != 0 && nr.Protocol != l.Protocol) || (l.Protocol == 0 && foreign[nr.Protocol]) ||
				m.yields(o, fam, 0, nr.Table, nr.Protocol) {
				continue
			}
			routes = append(routes, m.observeRoute(fam, nr, names))
		}
	}
	return rules, routes, nil
}

func observeRule(fam int, nr netlink.Rule) obsRule {
	o := obsRule{nl: nr, r: Rule{Family: fam, Priority: nr.Priority, Table: nr.Table, Mark: nr.Mark, Src: prefixOf(nr.Src), Invert: nr.Invert}}
	if nr.Mask != nil {
		o.r.Mask = *nr.Mask
	}
	if nr.SuppressPrefixlen == 0 {
		o.r.Suppress = true
		o.r.Table = 0
		if nr.Table != unix.RT_TABLE_MAIN {
			o.extra = true
		}
	}
	if nr.Dst != nil || nr.IifName != "" || nr.OifName != "" || nr.Tos != 0 || nr.Dport != nil || nr.Sport != nil ||
		nr.IPProto != 0 || nr.UIDRange != nil || nr.Goto > 0 || (nr.SuppressPrefixlen > 0) || nr.SuppressIfgroup > 0 {
		o.extra = true
	}
	return o
}

func (m *Manager) observeRoute(fam int, nr netlink.Route, names map[int]string) obsRoute {
	dst := prefixOf(nr.Dst)
	if !dst.IsValid() {
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == 6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
	}
	o := obsRoute{nl: nr, r: Route{Family: fam, Table: nr.Table, Dst: dst, Unreachable: nr.Type == unix.RTN_UNREACHABLE, Metric: nr.Priority}}
	if fam == 6 && nr.Priority == 1024 {
		o.r.Metric = 0 // the kernel's default for IPv6
	}
	if gw, ok := netip.AddrFromSlice(nr.Gw); ok {
		o.r.Gateway = gw.Unmap()
	}
	if nr.LinkIndex > 0 && !o.r.Unreachable {
		name, ok := names[nr.LinkIndex]
		if !ok {
			if l, err := m.h.LinkByIndex(nr.LinkIndex); err == nil {
				name = l.Attrs().Name
			}
			names[nr.LinkIndex] = name
		}
		o.r.Dev = name
	}
	if len(nr.MultiPath) > 0 || nr.Src != nil || (nr.Type != unix.RTN_UNICAST && nr.Type != unix.RTN_UNREACHABLE) {
		o.extra = true
	}
	return o
}

// Current returns o's rules and routes in the kernel, sorted.
func (m *Manager) Current(o Owner) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.owners[o]
	if !ok {
		return State{}, fmt.Errorf("route: %s has no lease", o)
	}
	rules, routes, err := m.observe(o, st.lease)
	if err != nil {
		return State{}, err
	}
	var cur State
	for _, r := range rules {
		cur.Rules = append(cur.Rules, r.r)
	}
	for _, r := range routes {
		cur.Routes = append(cur.Routes, r.r)
	}
	cur.Sort()
	return cur, nil
}

// SetError is the error of a Set that could not write everything: the
// rules and routes it failed on (the rest was applied).
type SetError struct {
	Rules  []Rule
	Routes []Route
	Err    error
}

func (e *SetError) Error() string { return e.Err.Error() }
func (e *SetError) Unwrap() error { return e.Err }

// Set makes the kernel's rules and routes in o's lease equal to desired:
// it adds what is missing, replaces what differs and deletes what is not
// desired, and leaves what is already right untouched. It returns how
// many changes it made. Desired state outside the lease is refused whole;
// on kernel errors it still applies what it can and returns a *SetError.
// The manager remembers desired: Watch puts it back when it drifts.
func (m *Manager) Set(o Owner, desired State) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.owners[o]
	if !ok {
		return 0, fmt.Errorf("route: %s has no lease", o)
	}
	for _, r := range desired.Rules {
		if !st.lease.ownsPriority(r.Family, r.Priority) {
			return 0, fmt.Errorf("rule %s: outside %s's lease (%s)", r, o, st.lease)
		}
	}
	for _, r := range desired.Routes {
		if !st.lease.ownsTable(r.Table) {
			return 0, fmt.Errorf("route %s: outside %s's lease (%s)", r, o, st.lease)
		}
	}
	st.desired = State{Rules: slices.Clone(desired.Rules), Routes: slices.Clone(desired.Routes)}
	st.set = true
	return m.apply(o, st.lease, desired)
}

// Clear deletes every rule and route in o's lease (and remembers that o
// wants none).
func (m *Manager) Clear(o Owner) (int, error) { return m.Set(o, State{}) }

// apply is Set's work, with m.mu held.
func (m *Manager) apply(o Owner, l Lease, desired State) (int, error) {
	rules, routes, err := m.observe(o, l)
	if err != nil {
		return 0, err
	}
	se := &SetError{}
	n := m.applyRoutes(l, routes, desired, se)
	n += m.applyRules(rules, desired, se)
	n += m.deleteRoutes(routes, desired, se)
	if se.Err != nil {
		return n, se
	}
	return n, nil
}

func (se *SetError) add(err error) { se.Err = errors.Join(se.Err, err) }

// applyRoutes adds and replaces the desired routes: routes first, so that
// a rule never points at an empty table. A route of the same destination
// with another metric is another route for the kernel: it goes first.
func (m *Manager) applyRoutes(l Lease, routes []obsRoute, desired State, se *SetError) int {
	n := 0
	have := map[string][]obsRoute{}
	for _, o := range routes {
		have[o.r.key()] = append(have[o.r.key()], o)
	}
	for _, r := range desired.Routes {
		h := have[r.key()]
		if len(h) == 1 && !h[0].extra && h[0].r == r {
			continue
		}
		for _, o := range h {
			if o.r.Metric != r.Metric {
				if err := m.h.RouteDel(&o.nl); err != nil && !errors.Is(err, unix.ESRCH) {
					se.add(fmt.Errorf("delete route %s: %w", o.r, err))
				}
				n++
			}
		}
		nr, err := m.toNetlinkRoute(l, r)
		if err == nil {
			err = m.h.RouteReplace(nr)
		}
		if err != nil {
			se.Routes = append(se.Routes, r)
			se.add(fmt.Errorf("%s: %w", r, err))
			continue
		}
		n++
	}
	return n
}

// applyRules deletes the wrong rules at wanted keys, adds the missing
// ones and deletes the rules not wanted.
func (m *Manager) applyRules(rules []obsRule, desired State, se *SetError) int {
	n := 0
	have := map[string][]obsRule{}
	for _, o := range rules {
		have[o.r.key()] = append(have[o.r.key()], o)
	}
	want := map[string]bool{}
	for _, r := range desired.Rules {
		want[r.key()] = true
		h := have[r.key()]
		if len(h) == 1 && !h[0].extra && h[0].r == r {
			continue
		}
		for _, o := range h {
			if err := m.h.RuleDel(&o.nl); err != nil && !errors.Is(err, unix.ENOENT) {
				se.add(fmt.Errorf("delete rule %s: %w", o.r, err))
			}
			n++
		}
		if err := m.h.RuleAdd(toNetlinkRule(r)); err != nil {
			se.Rules = append(se.Rules, r)
			se.add(fmt.Errorf("%s: %w", r, err))
			continue
		}
		n++
	}
	for _, o := range rules {
		if !want[o.r.key()] {
			if err := m.h.RuleDel(&o.nl); err != nil && !errors.Is(err, unix.ENOENT) {
				se.add(fmt.Errorf("delete rule %s: %w", o.r, err))
			}
			n++
		}
	}
	return n
}

// deleteRoutes deletes the routes not desired (and the duplicates of a
// desired one).
func (m *Manager) deleteRoutes(routes []obsRoute, desired State, se *SetError) int {
	n := 0
	want := map[string]Route{}
	for _, r := range desired.Routes {
		want[r.key()] = r
	}
	count := map[string]int{}
	for _, o := range routes {
		count[o.r.key()]++
	}
	for _, o := range routes {
		w, wanted := want[o.r.key()]
		if wanted && (o.r.Metric != w.Metric || count[o.r.key()] == 1 || o.r == w) {
			continue // right, replaced in place, or (another metric) deleted by applyRoutes
		}
		if err := m.h.RouteDel(&o.nl); err != nil && !errors.Is(err, unix.ESRCH) {
			se.add(fmt.Errorf("delete route %s: %w", o.r, err))
		}
		n++
	}
	return n
}

func toNetlinkRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = family(r.Family)
	nr.Priority = r.Priority
	nr.Invert = r.Invert
	if r.Src.IsValid() {
		nr.Src = ipnetOf(r.Src)
	}
	if r.Mask != 0 {
		nr.Mark = r.Mark
		mask := r.Mask
		nr.Mask = &mask
	}
	if r.Suppress {
		nr.Table = unix.RT_TABLE_MAIN
		nr.SuppressPrefixlen = 0
		return nr
	}
	nr.Table = r.Table
	return nr
}

func (m *Manager) toNetlinkRoute(l Lease, r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Family: family(r.Family), Table: r.Table, Dst: ipnetOf(r.Dst), Type: unix.RTN_UNICAST, Priority: r.Metric, Protocol: l.Protocol}
	if r.Unreachable {
		nr.Type = unix.RTN_UNREACHABLE
		return nr, nil
	}
	if r.Dev != "" {
		link, err := m.h.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", r.Dev, err)
		}
		nr.LinkIndex = link.Attrs().Index
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}
