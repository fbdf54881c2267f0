package daemon

import (
	"encoding/hex"
	"slices"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/bgp"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/pd"
	"github.com/multihome/multihome/ra"
)

// The daemon serves the API's optional views.
var (
	_ api.BGPReporter  = (*Daemon)(nil)
	_ api.Auditor      = (*Daemon)(nil)
	_ api.IPv6Reporter = (*Daemon)(nil)
	_ api.HAReporter   = (*Daemon)(nil)
)

// BGPStatus returns the BGP speaker's neighbours, and false when the
// config has no bgp section.
func (d *Daemon) BGPStatus() ([]bgp.NeighborStatus, bool) {
	for _, s := range d.running() {
		if sp, ok := s.sub.(*bgp.Speaker); ok {
			return sp.Status(), true
		}
	}
	return nil, false
}

// Audit is the static audit of the config in force (nothing is sent),
// with what the daemon knows live: whether the HA partner is seen.
func (d *Daemon) Audit() *audit.Report {
	var live audit.Live
	if st, ok := d.HAStatus(); ok {
		live.HAPartnerSeen = &st.Sync.PartnerSeen
	}
	return audit.StaticLive(d.Config(), live)
}

// IPv6Status returns the LAN prefixes advertised, with the delegations
// they come from, and the firewall sets; false when the config has no
// ipv6 section.
func (d *Daemon) IPv6Status() (api.IPv6Status, bool) {
	for _, s := range d.running() {
		if a, ok := s.sub.(*ra.Advertiser); ok {
			var cs []*pd.Client
			d.mu.Lock()
			p := d.pd
			d.mu.Unlock()
			if p != nil {
				cs = p.list()
			}
			return ipv6Status(time.Now(), a.Status(), d.mon.Snapshot(), cs), true
		}
	}
	return api.IPv6Status{}, false
}

// ipv6Status builds the API view from the advertiser's status, the links'
// states (why a prefix is deprecated) and the DHCPv6-PD clients (what is
// left of their delegations).
func ipv6Status(now time.Time, st ra.Status, links []monitor.Status, clients []*pd.Client) api.IPv6Status {
	v := st.IPv6
	out := api.IPv6Status{Time: now, Mode: string(v.Mode), LAN: v.LAN}
	if out.Mode == "" {
		out.Mode = string(config.IPv6ModeSADR)
	}
	leases := map[string]*api.PDLease{}
	for _, c := range clients {
		l, ok := c.Lease()
		if !ok {
			continue
		}
		since, _ := c.BoundSince()
		leases[c.Link()] = &api.PDLease{Delegated: l.Prefix, Server: duid(l.Server), BoundAt: since,
			RenewAt: l.T1, RebindAt: l.T2, PreferredUntil: l.Preferred, ValidUntil: l.Valid}
	}
	pdLink := func(link string) bool {
		return slices.ContainsFunc(v.Prefixes, func(p config.IPv6Prefix) bool { return p.Link == link && p.DHCPv6PD != nil })
	}
	linkReason := func(link string) string {
		i := slices.IndexFunc(links, func(s monitor.Status) bool { return s.Link == link })
		if i < 0 {
			return "link " + link + " unknown to the monitor"
		}
		switch s := links[i]; {
		case s.Admin == monitor.AdminDown:
			return "link forced down"
		case s.Admin == monitor.AdminDrain:
			return "link drained"
		default:
			return "link " + s.State.String()
		}
	}
	for _, p := range st.Prefixes {
		e := api.IPv6Prefix{Link: p.Link, Prefix: p.Prefix, Source: api.IPv6Static,
			PreferredLifetime: int64(p.Preferred / time.Second), ValidLifetime: int64(p.Valid / time.Second)}
		switch {
		case p.Link == "":
			e.Source = api.IPv6Internal
		case p.Retired:
			if pdLink(p.Link) && !slices.ContainsFunc(v.Prefixes, func(q config.IPv6Prefix) bool { return q.Link == p.Link && q.DHCPv6PD == nil }) {
				e.Source = api.IPv6DHCPv6PD
			}
		default:
			i := slices.IndexFunc(v.Prefixes, func(q config.IPv6Prefix) bool { return q.Prefix == p.Prefix })
			if i >= 0 && v.Prefixes[i].DHCPv6PD != nil {
				e.Source = api.IPv6DHCPv6PD
				e.Lease = leases[p.Link]
			}
		}
		switch {
		case p.Retired:
			e.State, e.Reason = api.IPv6Retired, "removed by a renumbering"
		case !p.Usable:
			e.State, e.Reason = api.IPv6Deprecated, linkReason(p.Link)
		default:
			e.State = api.IPv6Preferred
		}
		out.Prefixes = append(out.Prefixes, e)
	}
	if v.Mode != config.IPv6ModeNPTv6 {
		for _, p := range v.Prefixes {
			if p.DHCPv6PD == nil || p.Prefix.IsValid() {
				continue
			}
			e := api.IPv6Prefix{Link: p.Link, Source: api.IPv6DHCPv6PD, State: api.IPv6Pending, Lease: leases[p.Link]}
			if e.Lease == nil {
				e.Reason = "no delegation yet"
			} else {
				e.Reason = "delegation held but its subnet is not usable (see the log)"
			}
			out.Prefixes = append(out.Prefixes, e)
		}
	}
	for _, s := range st.Sets {
		out.FirewallSets = append(out.FirewallSets, api.FirewallSet{Family: s.Family, Table: s.Table, Set: s.Name,
			Prefixes: s.Prefixes, Error: s.Err, Checked: s.Checked, Updates: s.Updates})
	}
	return out
}

func duid(d interface{ ToBytes() []byte }) string {
	if d == nil {
		return ""
	}
	return hex.EncodeToString(d.ToBytes())
}
