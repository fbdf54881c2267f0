package daemon

import (
	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/bgp"
)

// The daemon serves the API's optional views.
var (
	_ api.BGPReporter = (*Daemon)(nil)
	_ api.Auditor     = (*Daemon)(nil)
)

// BGPStatus returns the BGP speaker's neighbours, and false when the
// config has no bgp section.
func (d *Daemon) BGPStatus() ([]bgp.NeighborStatus, bool) {
	for _, s := range d.subs {
		if sp, ok := s.sub.(*bgp.Speaker); ok {
			return sp.Status(), true
		}
	}
	return nil, false
}

// Audit is the static audit of the config in force (nothing is sent).
func (d *Daemon) Audit() *audit.Report {
	return audit.Static(d.Config())
}
