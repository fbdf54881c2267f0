package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/ra"
)

// IPv6 LAN multihoming (router advertisements, source routing) runs when
// the config has an ipv6 section.
func init() {
	builders = append(builders, builder{"ipv6", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.IPv6 == nil {
			return nil, nil
		}
		a, err := ra.New(cfg, src, log.With("subsystem", "ipv6"), ra.Options{})
		if err != nil {
			return nil, err
		}
		return a, reg.Register(a.Collector())
	}})
}
