package daemon

import (
	"log/slog"

	"github.com/multihome/multihome/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/bgp"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// The BGP speaker runs when the config has a bgp section; its
// neighbours' BFD sessions come from the daemon's BFD manager.
func init() {
	builders = append(builders, builder{"bgp", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.BGP == nil {
			return nil, nil
		}
		s, err := bgp.New(cfg, src, log.With("subsystem", "bgp"))
		if err != nil {
			return nil, err
		}
		s.UseBFD(bfdManager(src, log))
		return s, reg.Register(s.Collector())
	}})
}

// logDecisions puts a subsystem's own decisions into the API's decision
// log, so that `multihome events` shows them next to the link events: the
// BGP speaker's announcements (announce, prepend, withdraw, with their
// reason) and BFD downs, the link sessions' BFD downs. It runs for every
// subsystem once the API exists, and for each one a reload builds, before
// the subsystem starts.
func (d *Daemon) logDecisions(s subsystem) {
	if d.api == nil {
		return
	}
	switch s := s.(type) {
	case *bgp.Speaker:
		s.OnDecision(func(dec bgp.Decision) { d.api.Record(bgpEntry(dec)) })
	case *linkBFD:
		s.record = d.api.Record
	}
}

// bgpEntry is a decision log entry for a BGP decision.
// A neighbour's BFD down is of kind "bfd", as a link session's.
func bgpEntry(dec bgp.Decision) api.Entry {
	kind := "bgp"
	if dec.BFD {
		kind = "bfd"
	}
	return api.Entry{Time: dec.Time, Kind: kind, Link: dec.Link, Neighbor: dec.Neighbor.String(),
		From: dec.From, To: dec.To, Reason: dec.Reason}
}
