package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/outbound"
)

// The outbound datapath always runs: with no outbound section it spreads
// new flows over all healthy links by weight.
func init() {
	builders = append(builders, builder{"outbound", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		c, err := outbound.New(cfg, src, log)
		if err != nil {
			return nil, err
		}
		return c, registerAll(reg, c.Collectors())
	}})
}
