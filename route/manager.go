package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager reads and writes the policy routing of one network namespace
// through a netlink handle. It touches only rules whose priority and routes
// whose table are in its scheme's ranges. It is not safe for concurrent
// use: the outbound controller owns it.
type Manager struct {
	h      *netlink.Handle
	scheme Scheme
}

// NewManager returns a manager working through h (a handle created in the
// namespace to manage; nil means the process's own namespace).
func NewManager(h *netlink.Handle, s Scheme) *Manager {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &Manager{h: h, scheme: s}
}

// Scheme returns the manager's scheme.
func (m *Manager) Scheme() Scheme { return m.scheme }

// SetScheme changes the ranges the manager owns (after a config change).
// Call Clear with the old scheme first if the ranges move.
func (m *Manager) SetScheme(s Scheme) { m.scheme = s }

// ProtoBGP is the routing protocol (RTPROT_BGP, 186) of the routes the
// BGP speaker imports into the links' tables (package bgp). The manager
// neither reports, counts nor deletes them: they belong to the speaker,
// which installs them with a higher metric than the manager's default
// route so both coexist in a link's table.
const ProtoBGP = netlink.RouteProtocol(unix.RTPROT_BGP)

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

func (m *Manager) observe() (rules []obsRule, routes []obsRoute, err error) {
	names := map[int]string{}
	for _, fam := range []int{4, 6} {
		nrs, err := m.h.RuleList(family(fam))
		if err != nil {
			return nil, nil, fmt.Errorf("list ipv%d rules: %w", fam, err)
		}
		for _, nr := range nrs {
			if !m.scheme.OwnsPriority(nr.Priority) {
				continue
			}
			o := obsRule{nl: nr, r: Rule{Family: fam, Priority: nr.Priority, Table: nr.Table, Mark: nr.Mark, Src: prefixOf(nr.Src)}}
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
			if nr.Dst != nil || nr.IifName != "" || nr.OifName != "" || nr.Tos != 0 || nr.Invert || nr.Dport != nil || nr.Sport != nil ||
				nr.IPProto != 0 || nr.UIDRange != nil || nr.Goto > 0 || (nr.SuppressPrefixlen > 0) || nr.SuppressIfgroup > 0 {
				o.extra = true
			}
			rules = append(rules, o)
		}
		nrts, err := m.h.RouteListFiltered(family(fam), &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, nil, fmt.Errorf("list ipv%d routes: %w", fam, err)
		}
		for _, nr := range nrts {
			if !m.scheme.OwnsTable(nr.Table) || nr.Protocol == ProtoBGP {
				continue
			}
			dst := prefixOf(nr.Dst)
			if !dst.IsValid() {
				dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				if fam == 6 {
					dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				}
			}
			o := obsRoute{nl: nr, r: Route{Family: fam, Table: nr.Table, Dst: dst, Unreachable: nr.Type == unix.RTN_UNREACHABLE}}
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
			if len(nr.MultiPath) > 0 || nr.Src != nil || (nr.Priority != 0 && !(fam == 6 && nr.Priority == 1024)) || (nr.Type != unix.RTN_UNICAST && nr.Type != unix.RTN_UNREACHABLE) {
				o.extra = true
			}
			routes = append(routes, o)
		}
	}
	return rules, routes, nil
}

// Current returns the rules and routes in the manager's ranges, sorted.
func (m *Manager) Current() (State, error) {
	rules, routes, err := m.observe()
	if err != nil {
		return State{}, err
	}
	var st State
	for _, r := range rules {
		st.Rules = append(st.Rules, r.r)
	}
	for _, r := range routes {
		st.Routes = append(st.Routes, r.r)
	}
	st.Sort()
	return st, nil
}

// Set makes the kernel's rules and routes in the manager's ranges equal
// to desired: it adds what is missing, replaces what differs and deletes
// what is not desired, and leaves what is already right untouched. It
// returns how many changes it made. On errors it still applies what it
// can and returns them joined.
func (m *Manager) Set(desired State) (int, error) {
	for _, r := range desired.Rules {
		if !m.scheme.OwnsPriority(r.Priority) {
			return 0, fmt.Errorf("rule %s: priority outside the owned range", r)
		}
	}
	for _, r := range desired.Routes {
		if !m.scheme.OwnsTable(r.Table) {
			return 0, fmt.Errorf("route %s: table outside the owned range", r)
		}
	}
	rules, routes, err := m.observe()
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0

	// Routes first, so that a rule never points at an empty table.
	haveRoute := map[string][]obsRoute{}
	for _, o := range routes {
		haveRoute[o.r.key()] = append(haveRoute[o.r.key()], o)
	}
	wantRoute := map[string]bool{}
	for _, r := range desired.Routes {
		wantRoute[r.key()] = true
		if h := haveRoute[r.key()]; len(h) == 1 && !h[0].extra && h[0].r == r {
			continue
		}
		nr, err := m.toNetlinkRoute(r)
		if err == nil {
			err = m.h.RouteReplace(nr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		n++
	}
	// Rules: delete wrong ones at wanted priorities, add missing ones.
	haveRule := map[string][]obsRule{}
	for _, o := range rules {
		haveRule[o.r.key()] = append(haveRule[o.r.key()], o)
	}
	wantRule := map[string]bool{}
	for _, r := range desired.Rules {
		wantRule[r.key()] = true
		h := haveRule[r.key()]
		if len(h) == 1 && !h[0].extra && h[0].r == r {
			continue
		}
		for _, o := range h {
			if err := m.h.RuleDel(&o.nl); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete rule %s: %w", o.r, err))
			}
			n++
		}
		if err := m.h.RuleAdd(toNetlinkRule(r)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			continue
		}
		n++
	}
	for _, o := range rules {
		if !wantRule[o.r.key()] {
			if err := m.h.RuleDel(&o.nl); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete rule %s: %w", o.r, err))
			}
			n++
		}
	}
	for _, o := range routes {
		if !wantRoute[o.r.key()] || len(haveRoute[o.r.key()]) > 1 && o.r != desiredRoute(desired, o.r.key()) {
			if err := m.h.RouteDel(&o.nl); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", o.r, err))
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

func desiredRoute(st State, key string) Route {
	for _, r := range st.Routes {
		if r.key() == key {
			return r
		}
	}
	return Route{}
}

// Clear deletes every rule and route in the manager's ranges.
func (m *Manager) Clear() (int, error) { return m.Set(State{}) }

func toNetlinkRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = family(r.Family)
	nr.Priority = r.Priority
	switch {
	case r.Suppress:
		nr.Table = unix.RT_TABLE_MAIN
		nr.SuppressPrefixlen = 0
		return nr
	case r.Mark != 0:
		nr.Mark = r.Mark
		mask := r.Mask
		nr.Mask = &mask
	case r.Src.IsValid():
		nr.Src = ipnetOf(r.Src)
	}
	nr.Table = r.Table
	return nr
}

func (m *Manager) toNetlinkRoute(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Family: family(r.Family), Table: r.Table, Dst: ipnetOf(r.Dst), Type: unix.RTN_UNICAST}
	if r.Unreachable {
		nr.Type = unix.RTN_UNREACHABLE
		return nr, nil
	}
	if r.Dev != "" {
		l, err := m.h.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}
