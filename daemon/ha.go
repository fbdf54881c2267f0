package daemon

import (
	"log/slog"
	"slices"

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

// standbyer is a subsystem that stands down on the standby node of an HA
// pair (the router advertisements: router lifetime 0).
type standbyer interface{ SetStandby(bool) }

// followRole makes the subsystems follow this node's HA role: every one
// that can stand down does so unless the node is master. Until keepalived
// has reported, the node counts as standby.
func (d *Daemon) followRole(n *ha.Node) {
	set := func(r ha.Role) {
		d.mu.Lock()
		subs := slices.Clone(d.subs)
		d.mu.Unlock()
		for _, s := range subs {
			if sb, ok := s.sub.(standbyer); ok {
				sb.SetStandby(r != ha.RoleMaster)
			}
		}
	}
	n.OnRole(set)
	set(ha.RoleInit)
}

// wireHA makes the subsystems follow the HA node's role, if there is one.
// (A node added by a reload starts with the subsystems as they are; they
// follow from its first role change.)
func (d *Daemon) wireHA() {
	for _, s := range d.subs {
		if n, ok := s.sub.(*ha.Node); ok {
			d.followRole(n)
		}
	}
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
