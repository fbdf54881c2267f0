package bgp

import (
	"context"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/bfd"
)

// Collector exports the speaker's state as multihome_bgp_* metrics, read
// from GoBGP when scraped.
func (s *Speaker) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Speaker }

var (
	labels     = []string{"neighbor", "link"}
	mUp        = prometheus.NewDesc("multihome_bgp_session_up", "1 when the BGP session to the neighbour is established.", labels, nil)
	mState     = prometheus.NewDesc("multihome_bgp_session_state", "BGP session state as in RFC 4271: 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established.", labels, nil)
	mAnnounced = prometheus.NewDesc("multihome_bgp_announced", "1 when the site's prefixes are exported to the neighbour, 0 when withdrawn.", labels, nil)
	mPrepend   = prometheus.NewDesc("multihome_bgp_prepend", "Extra copies of the local AS prepended toward the neighbour.", labels, nil)
	mSent      = prometheus.NewDesc("multihome_bgp_prefixes_sent", "Prefixes advertised to the neighbour.", labels, nil)
	mBFD       = prometheus.NewDesc("multihome_bgp_bfd_up", "1 when multihome's BFD session to the neighbour is up (only neighbours with bfd configured).", labels, nil)
	mReceived  = prometheus.NewDesc("multihome_bgp_prefixes_received", "Prefixes received from the neighbour (before the import policy, which rejects all).", labels, nil)
	mUnproven  = prometheus.NewDesc("multihome_bgp_bfd_unproven_downs_total", "Downs of the neighbour's BFD session that were not acted on: up for less than its hold-up, or its runner failed (docs/bfd.md, Hold-up).", labels, nil)
	mImported  = prometheus.NewDesc("multihome_bgp_imported_routes", "Routes from the neighbour installed in its link's routing table (import: default or full).", labels, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mUp, mState, mAnnounced, mPrepend, mSent, mReceived, mBFD, mImported, mUnproven} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	type row struct {
		addr       netip.Addr
		p          peerInfo
		sent, recv uint64
	}
	s.mu.Lock()
	srv := s.srv
	rows := make([]row, 0, len(s.peers))
	for a, p := range s.peers {
		rows = append(rows, row{addr: a, p: *p})
	}
	s.mu.Unlock()
	if srv != nil {
		counts := map[string][2]uint64{}
		srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			var sent, recv uint64
			for _, af := range p.AfiSafis {
				if af.State != nil {
					sent += af.State.Advertised
					recv += af.State.Received
				}
			}
			if p.Conf != nil {
				counts[p.Conf.NeighborAddress] = [2]uint64{sent, recv}
			}
		})
		for i := range rows {
			c := counts[rows[i].addr.String()]
			rows[i].sent, rows[i].recv = c[0], c[1]
		}
	}
	gauge := func(d *prometheus.Desc, v float64, r row) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.addr.String(), r.p.link)
	}
	for _, r := range rows {
		up := 0.0
		if r.p.state == bgp.BGP_FSM_ESTABLISHED {
			up = 1
		}
		gauge(mUp, up, r)
		gauge(mState, float64(r.p.state)+1, r)
		ann := 0.0
		if r.p.announced {
			ann = 1
		}
		gauge(mAnnounced, ann, r)
		gauge(mPrepend, float64(r.p.prepend), r)
		gauge(mSent, float64(r.sent), r)
		gauge(mReceived, float64(r.recv), r)
		gauge(mImported, float64(r.p.imported), r)
		if r.p.bfd != bfd.AdminDown {
			v := 0.0
			if r.p.bfd == bfd.Up {
				v = 1
			}
			gauge(mBFD, v, r)
			ch <- prometheus.MustNewConstMetric(mUnproven, prometheus.CounterValue, float64(r.p.bfdUnproven), r.addr.String(), r.p.link)
		}
	}
}
