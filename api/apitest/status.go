package apitest

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/bgp"
	"github.com/multihome/multihome/mptcp"
)

// StatusFake is a Fake that also serves the optional views: BGP
// neighbours (api.BGPReporter) and the static audit of its config
// (api.Auditor).
type StatusFake struct {
	*Fake

	smu       sync.Mutex
	bgpOn     bool
	neighbors []bgp.NeighborStatus
	ipv6On    bool
	ipv6      api.IPv6Status
	mptcpOn   bool
	mptcp     mptcp.Status
}

var (
	_ api.BGPReporter   = (*StatusFake)(nil)
	_ api.Auditor       = (*StatusFake)(nil)
	_ api.IPv6Reporter  = (*StatusFake)(nil)
	_ api.MPTCPReporter = (*StatusFake)(nil)
)

// WithStatus wraps f; BGP is configured with these neighbours.
func WithStatus(f *Fake, neighbors ...bgp.NeighborStatus) *StatusFake {
	return &StatusFake{Fake: f, bgpOn: true, neighbors: neighbors}
}

// Neighbors returns a BGP neighbour per upstream of Links: fiber
// established and announcing, cable established with a prepend, lte
// still connecting.
func Neighbors() []bgp.NeighborStatus {
	now := time.Now()
	return []bgp.NeighborStatus{
		{Neighbor: netip.MustParseAddr("198.51.100.1"), Link: "fiber", PeerAS: 64501, State: "established",
			Since: now.Add(-3 * time.Hour), PrefixesSent: 2, PrefixesReceived: 1, Announced: true, BFD: "up",
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("192.0.2.128/25")}, Import: "full", Imported: 1},
		{Neighbor: netip.MustParseAddr("203.0.113.1"), Link: "cable", PeerAS: 64502, State: "established",
			Since: now.Add(-47 * time.Minute), PrefixesSent: 2, PrefixesReceived: 1, Announced: true, Prepend: 3,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("192.0.2.128/25")}, Import: "none"},
		{Neighbor: netip.MustParseAddr("2001:db8:ff::1"), Link: "lte", PeerAS: 64503, State: "active",
			Since: now.Add(-6 * time.Minute), Reason: "hold timer expired", Withdrawn: true,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::/48")}, Import: "none", BFD: "down"},
	}
}

// SetBGP replaces the neighbours; configured false makes GET /api/v1/bgp
// answer 404 as a daemon without a bgp section does.
func (s *StatusFake) SetBGP(configured bool, neighbors ...bgp.NeighborStatus) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.bgpOn, s.neighbors = configured, neighbors
}

// UpdateNeighbor changes the neighbours of a link with fn.
func (s *StatusFake) UpdateNeighbor(link string, fn func(*bgp.NeighborStatus)) {
	s.smu.Lock()
	defer s.smu.Unlock()
	for i := range s.neighbors {
		if s.neighbors[i].Link == link {
			fn(&s.neighbors[i])
		}
	}
}

// BGPStatus implements api.BGPReporter.
func (s *StatusFake) BGPStatus() ([]bgp.NeighborStatus, bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	return append([]bgp.NeighborStatus(nil), s.neighbors...), s.bgpOn
}

// Audit implements api.Auditor: the static audit of the fake's config.
func (s *StatusFake) Audit() *audit.Report { return audit.Static(s.Config()) }

// IPv6 returns an IPv6 view for Links: fiber's and cable's prefixes
// preferred (cable's learned by DHCPv6-PD, with its lease), lte's
// delegation not learned yet, and a firewall set holding the two.
func IPv6() api.IPv6Status {
	now := time.Now()
	fiber, cable := netip.MustParsePrefix("2001:db8:1:100::/64"), netip.MustParsePrefix("2001:db8:2:100::/64")
	return api.IPv6Status{Time: now, Mode: "sadr", LAN: "lan0",
		Prefixes: []api.IPv6Prefix{
			{Link: "fiber", Prefix: fiber, Source: api.IPv6Static, State: api.IPv6Preferred, PreferredLifetime: 1800, ValidLifetime: 3600},
			{Link: "cable", Prefix: cable, Source: api.IPv6DHCPv6PD, State: api.IPv6Preferred, PreferredLifetime: 1800, ValidLifetime: 3600,
				Lease: &api.PDLease{Delegated: netip.MustParsePrefix("2001:db8:2:100::/56"), Server: "000300010203040506ff",
					BoundAt: now.Add(-2 * time.Hour), RenewAt: now.Add(30 * time.Minute), RebindAt: now.Add(48 * time.Minute),
					PreferredUntil: now.Add(time.Hour), ValidUntil: now.Add(2 * time.Hour)}},
			{Link: "lte", Source: api.IPv6DHCPv6PD, State: api.IPv6Pending, Reason: "no delegation yet"},
		},
		FirewallSets: []api.FirewallSet{{Family: "inet", Table: "filter", Set: "lan6", Prefixes: []netip.Prefix{fiber, cable},
			Checked: now.Add(-5 * time.Second), Updates: 1}},
	}
}

// SetIPv6 replaces the IPv6 view; configured false makes GET /api/v1/ipv6
// answer 404 as a daemon without an ipv6 section does (the default).
func (s *StatusFake) SetIPv6(configured bool, st api.IPv6Status) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.ipv6On, s.ipv6 = configured, st
}

// UpdatePrefix changes the IPv6 prefixes of a link with fn.
func (s *StatusFake) UpdatePrefix(link string, fn func(*api.IPv6Prefix)) {
	s.smu.Lock()
	defer s.smu.Unlock()
	ps := slices.Clone(s.ipv6.Prefixes)
	for i := range ps {
		if ps[i].Link == link {
			fn(&ps[i])
		}
	}
	s.ipv6.Prefixes = ps
}

// IPv6Status implements api.IPv6Reporter.
func (s *StatusFake) IPv6Status() (api.IPv6Status, bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	st := s.ipv6
	st.Prefixes = slices.Clone(st.Prefixes)
	st.FirewallSets = slices.Clone(st.FirewallSets)
	return st, s.ipv6On
}

// MPTCP returns an MPTCP view for Links: fiber up with two subflow
// endpoints, cable degraded with a backup one, lte down without any, and
// an operator's signal endpoint.
func MPTCP() mptcp.Status {
	a := netip.MustParseAddr
	return mptcp.Status{Time: time.Now(), Limits: mptcp.Limits{Subflows: 4, AddAddrAccepted: 4},
		Endpoints: []mptcp.EndpointStatus{
			{ID: 1, Address: a("192.0.2.1"), Flags: []string{"signal"}, Operator: true},
			{ID: 100, Address: a("198.51.100.2"), Flags: []string{"subflow"}, Link: "fiber", Interface: "wan1", IfIndex: 3},
			{ID: 101, Address: a("2001:db8:1::2"), Flags: []string{"subflow"}, Link: "fiber", Interface: "wan1", IfIndex: 3},
			{ID: 102, Address: a("203.0.113.2"), Flags: []string{"subflow", "backup"}, Link: "cable", Interface: "wan2", IfIndex: 4},
		},
		Links: []mptcp.LinkStatus{
			{Link: "fiber", Interface: "wan1", State: "up", Admin: "none", Mode: "subflow", Endpoints: []int{100, 101}},
			{Link: "cable", Interface: "wan2", State: "degraded", Admin: "none", Mode: "backup", Endpoints: []int{102}, Reason: "degraded"},
			{Link: "lte", Interface: "wwan0", State: "down", Admin: "none", Mode: "none", Endpoints: []int{}, Reason: "link down"},
		}}
}

// SetMPTCP replaces the MPTCP view; configured false makes GET
// /api/v1/mptcp answer 404 as a daemon without an mptcp section does (the
// default).
func (s *StatusFake) SetMPTCP(configured bool, st mptcp.Status) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.mptcpOn, s.mptcp = configured, st
}

// MPTCPStatus implements api.MPTCPReporter.
func (s *StatusFake) MPTCPStatus() (mptcp.Status, bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	st := s.mptcp
	st.Endpoints = slices.Clone(st.Endpoints)
	st.Links = slices.Clone(st.Links)
	return st, s.mptcpOn
}
