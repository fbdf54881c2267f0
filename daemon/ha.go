package daemon

import (
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/api"
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
// pair: the router advertisements (router lifetime 0), the BGP speaker
// (sessions kept, announcements withdrawn), the DNS server (answers, but
// leaves the RFC 2136 push to the master).
type standbyer interface{ SetStandby(bool) }

// roleNode is what the daemon needs of an HA node (*ha.Node): its state
// and its role changes.
type roleNode interface {
	Status() ha.Status
	// OnRole sets the function called with every new role (before Run).
	OnRole(func(ha.Role))
}

// wireRole makes a freshly built subsystem follow the HA role: an ha
// node reports its role changes to followRole; a standbyer starts as
// standby when cfg has an ha section and this node is not its master
// yet. An ha node added by a reload is followed from the moment it is
// built (the running subsystems stand down at once), through its trial
// start, not only once the reload is through: the reload ends with
// followRole, after clearing haNext, whether it applied or not.
func (d *Daemon) wireRole(s subsystem, cfg *config.Config) {
	if n, ok := s.(roleNode); ok {
		prev := n.Status().Role // the callback runs in the node's Run goroutine only
		n.OnRole(func(r ha.Role) {
			d.recordRole(prev, r)
			prev = r
			d.followRole()
		})
		d.mu.Lock()
		d.haNext = n
		d.mu.Unlock()
		d.followRole()
	}
	if sb, ok := s.(standbyer); ok {
		master := false
		if n := d.haNode(); n != nil {
			master = n.Status().Role == ha.RoleMaster
		}
		sb.SetStandby(cfg.HA != nil && !master)
	}
}

// followRole makes the running subsystems follow this node's HA role:
// every one that can stand down does so unless the node is master; with
// no ha node running (none configured, or its section removed by a
// reload) every one is master. Until keepalived has reported, the node
// counts as standby. Called on every role change and after every reload;
// roleMu makes the last call apply the latest role.
func (d *Daemon) followRole() {
	d.roleMu.Lock()
	defer d.roleMu.Unlock()
	standby := false
	if n := d.haNode(); n != nil {
		standby = n.Status().Role != ha.RoleMaster
	}
	for _, s := range d.running() {
		if sb, ok := s.sub.(standbyer); ok {
			sb.SetStandby(standby)
		}
	}
}

// recordRole puts a role change into the decision log (multihome events)
// with the subsystems that follow it.
func (d *Daemon) recordRole(from, to ha.Role) {
	if d.api == nil {
		return
	}
	var names []string
	for _, s := range d.running() {
		if _, ok := s.sub.(standbyer); ok {
			if f, ok := s.sub.(interface{ FollowsRole() bool }); ok && !f.FollowsRole() {
				continue // outbound without a transit link: the same either way
			}
			names = append(names, s.name)
		}
	}
	why := "keepalived reported the role"
	if to == ha.RoleStopped {
		why = "keepalived stopped"
	}
	follow := "no subsystem to stand down"
	switch {
	case len(names) > 0 && to == ha.RoleMaster:
		follow = "up as master: " + strings.Join(names, ", ")
	case len(names) > 0:
		follow = "standing down: " + strings.Join(names, ", ")
	}
	d.api.Record(api.Entry{Time: time.Now(), Kind: "ha", From: string(from), To: string(to), Reason: why + "; " + follow})
}

// haNode returns the running ha node, or the one a reload is adding
// (haNext); nil without either.
func (d *Daemon) haNode() roleNode {
	for _, s := range d.running() {
		if n, ok := s.sub.(roleNode); ok {
			return n
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.haNext
}

// roleSettled ends a reload's (or New's) hold of the ha node it built, and
// makes every subsystem follow the role of the node that runs now.
func (d *Daemon) roleSettled() {
	d.mu.Lock()
	d.haNext = nil
	d.mu.Unlock()
	d.followRole()
}

// HAStatus returns the pair's state as this node sees it, and false when
// the config has no ha section.
func (d *Daemon) HAStatus() (ha.Status, bool) {
	if n := d.haNode(); n != nil {
		return n.Status(), true
	}
	return ha.Status{}, false
}
