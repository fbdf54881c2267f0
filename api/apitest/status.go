package apitest

import (
	"net/netip"
	"sync"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/bgp"
)

// StatusFake is a Fake that also serves the optional views: BGP
// neighbours (api.BGPReporter) and the static audit of its config
// (api.Auditor).
type StatusFake struct {
	*Fake

	smu       sync.Mutex
	bgpOn     bool
	neighbors []bgp.NeighborStatus
}

var (
	_ api.BGPReporter = (*StatusFake)(nil)
	_ api.Auditor     = (*StatusFake)(nil)
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
			Since: now.Add(-3 * time.Hour), PrefixesSent: 2, PrefixesReceived: 1, Announced: true, BFD: "up"},
		{Neighbor: netip.MustParseAddr("203.0.113.1"), Link: "cable", PeerAS: 64502, State: "established",
			Since: now.Add(-47 * time.Minute), PrefixesSent: 2, PrefixesReceived: 1, Announced: true, Prepend: 3},
		{Neighbor: netip.MustParseAddr("2001:db8:ff::1"), Link: "lte", PeerAS: 64503, State: "active",
			Since: now.Add(-6 * time.Minute), Reason: "hold timer expired", Withdrawn: true},
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
