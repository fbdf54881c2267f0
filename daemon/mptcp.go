package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/api"
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
		return c, registerAll(reg, c.Collectors())
	}})
}

var _ api.MPTCPReporter = (*Daemon)(nil)

// MPTCPStatus returns the MPTCP endpoints as the path manager's last
// apply left them (nothing is asked of the kernel), and false when the
// config has no mptcp section.
func (d *Daemon) MPTCPStatus() (mptcp.Status, bool) {
	for _, s := range d.running() {
		if c, ok := s.sub.(*mptcp.Controller); ok {
			st, ok := c.Status()
			if !ok {
				st = mptcp.Status{Error: "the path manager has not been set up yet"}
			}
			return st, true
		}
	}
	return mptcp.Status{}, false
}
