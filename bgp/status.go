package bgp

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/multihome/multihome/bfd"
)

// NeighborStatus is one BGP neighbour as the speaker sees it, for the
// HTTP API and the dashboard.
type NeighborStatus struct {
	// Neighbor is the neighbour's address, Link the uplink it is
	// reached through, PeerAS its AS number.
	Neighbor netip.Addr `json:"neighbor"`
	Link     string     `json:"link"`
	PeerAS   uint32     `json:"peer_as"`
	// State is the session state as in RFC 4271: idle, connect, active,
	// opensent, openconfirm, established.
	State string `json:"state"`
	// Since is when the session state last changed (or the neighbour was
	// configured); Reason what is known of why the session is not
	// established (empty while it is): a BFD session that is not up, or
	// the disconnect message of GoBGP's last state change.
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	// PrefixesSent and PrefixesReceived count the prefixes advertised to
	// and received from the neighbour (before the import policy).
	PrefixesSent     uint64 `json:"prefixes_sent"`
	PrefixesReceived uint64 `json:"prefixes_received"`
	// Announced: the site's prefixes are exported to the neighbour;
	// Withdrawn: they are not (its link is not usable, BFD is down, flap
	// damping suppresses it, or this node is an HA pair's standby);
	// Prepend: extra copies of the local AS.
	Announced bool `json:"announced"`
	Withdrawn bool `json:"withdrawn"`
	Prepend   int  `json:"prepend"`
	// Prefixes are the site's prefixes of the neighbour's family: what
	// it is sent while Announced.
	Prefixes []netip.Prefix `json:"prefixes"`
	// BFD is multihome's BFD session state (down, init, up), empty when
	// BFD is not configured for the neighbour.
	BFD string `json:"bfd,omitempty"`
	// Import is the neighbour's import setting (none, default, full);
	// Imported the number of its routes installed in its link's routing
	// table; ImportLimited is set while it sends more than max_prefixes
	// (the routes over the limit are not installed).
	Import        string `json:"import"`
	Imported      int    `json:"imported"`
	ImportLimited bool   `json:"import_limited,omitempty"`
}

// Status returns every configured neighbour's state, in config order. It
// is safe to call from any goroutine, running or not.
func (s *Speaker) Status() []NeighborStatus {
	s.mu.Lock()
	srv := s.srv
	var order []netip.Addr
	imports := map[netip.Addr]string{}
	prefixes := map[netip.Addr][]netip.Prefix{}
	if s.cfg != nil {
		for _, n := range s.cfg.Neighbors {
			order = append(order, n.Address)
			imports[n.Address] = n.Import
			for _, p := range s.cfg.Prefixes {
				if p.Addr().Is4() == n.Address.Is4() {
					prefixes[n.Address] = append(prefixes[n.Address], p)
				}
			}
		}
	}
	out := make([]NeighborStatus, 0, len(s.peers))
	for a, p := range s.peers {
		n := NeighborStatus{
			Neighbor: a, Link: p.link, PeerAS: p.asn, State: stateName(p.state), Since: p.since,
			Announced: p.announced, Withdrawn: !p.announced, Prepend: p.prepend,
			Import: cmp.Or(imports[a], "none"), Imported: p.imported, ImportLimited: p.importLimited,
			Prefixes: append([]netip.Prefix{}, prefixes[a]...),
		}
		if p.state != bgp.BGP_FSM_ESTABLISHED {
			n.Reason = p.reason
		}
		if p.bfd != bfd.AdminDown {
			n.BFD = p.bfd.String()
			if p.state != bgp.BGP_FSM_ESTABLISHED && p.bfd != bfd.Up {
				n.Reason = "BFD session " + n.BFD
			}
		}
		out = append(out, n)
	}
	s.mu.Unlock()
	pos := func(a netip.Addr) int {
		if i := slices.Index(order, a); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortFunc(out, func(a, b NeighborStatus) int {
		return cmp.Or(cmp.Compare(pos(a.Neighbor), pos(b.Neighbor)), a.Neighbor.Compare(b.Neighbor))
	})
	if srv == nil {
		return out
	}
	type info struct{ sent, recv uint64 }
	infos := map[string]info{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		var i info
		for _, af := range p.AfiSafis {
			if af.State != nil {
				i.sent += af.State.Advertised
				i.recv += af.State.Received
			}
		}
		infos[p.Conf.NeighborAddress] = i
	})
	for k := range out {
		i := infos[out[k].Neighbor.String()]
		out[k].PrefixesSent, out[k].PrefixesReceived = i.sent, i.recv
	}
	return out
}
