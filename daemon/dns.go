package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/dns"
	"github.com/multihome/multihome/monitor"
)

// The DNS server runs when the config has a dns section.
func init() {
	builders = append(builders, builder{"dns", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.DNS == nil {
			return nil, nil
		}
		s, err := dns.New(cfg, src, log.With("subsystem", "dns"))
		if err != nil {
			return nil, err
		}
		return s, reg.Register(s.Collector())
	}})
}
