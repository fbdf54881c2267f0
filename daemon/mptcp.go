package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/mptcp"
)

// The MPTCP path manager runs when the config has an mptcp section.
func init() {
	optional["mptcp"] = func(c *config.Config) bool { return c.MPTCP != nil }
	builders = append(builders, builder{"mptcp", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.MPTCP == nil {
			return nil, nil
		}
		c, err := mptcp.New(cfg, src, log.With("subsystem", "mptcp"))
		if err != nil {
			return nil, err
		}
		for _, col := range c.Collectors() {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
		return c, nil
	}})
}
