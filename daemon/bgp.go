package daemon

import (
	"log/slog"

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
