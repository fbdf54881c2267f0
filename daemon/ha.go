package daemon

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ha"
	"github.com/multihome/multihome/monitor"
)

// The HA node (keepalived and conntrackd as children, VRRP priority from
// link health) runs when the config has an ha section.
func init() {
	builders = append(builders, builder{"ha", func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error) {
		if cfg.HA == nil {
			return nil, nil
		}
		n, err := ha.New(cfg, src, log.With("subsystem", "ha"))
		if err != nil {
			return nil, err
		}
		return n, reg.Register(n.Collector())
	}})
	optional["ha"] = func(c *config.Config) bool { return c.HA != nil }
}

// HAStatus returns the pair's state as this node sees it, and false when
// the config has no ha section.
func (d *Daemon) HAStatus() (ha.Status, bool) {
	for _, s := range d.subs {
		if n, ok := s.sub.(*ha.Node); ok {
			return n.Status(), true
		}
	}
	return ha.Status{}, false
}
