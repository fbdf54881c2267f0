package config

import (
	"fmt"
	"net/netip"
)

// A transit link is how a node of an HA pair with split uplinks (gateway
// A has isp1, B has isp2) reaches its partner's uplink: a link on the sync
// interface whose next hop is the partner's sync address. The partner
// translates the flows (snat: false here), so a flow keeps the LAN host's
// address up to the partner's uplink and the partner can carry it on when
// it takes the LAN over. Its probes go through the partner and test the
// partner's uplink end to end. See docs/ha.md, "Split uplinks".

func init() { sectionChecks = append(sectionChecks, checkTransit) }

// SNATOn reports whether flows leaving link i are source-NATed: the
// link's own snat, else outbound.snat (default true).
func (c *Config) SNATOn(i int) bool {
	if s := c.Links[i].SNAT; s != nil {
		return *s
	}
	o := c.EffectiveOutbound()
	return *o.SNAT
}

// IsTransit reports whether link i is a transit link to the HA partner's
// uplinks: on the sync interface, via the partner's sync address.
func (c *Config) IsTransit(i int) bool {
	if c.HA == nil || i < 0 || i >= len(c.Links) {
		return false
	}
	l := c.Links[i]
	return l.Interface != "" && l.Interface == c.HA.Sync.Interface && l.Gateway4.IsValid() && l.Gateway4 == c.HA.Sync.Partner
}

// TransitLink returns the index of the transit link, or -1.
func (c *Config) TransitLink() int {
	for i := range c.Links {
		if c.IsTransit(i) {
			return i
		}
	}
	return -1
}

// checkTransit validates the transit link: the partner translates (snat
// false), IPv4 only (conntrackd syncs IPv4), probes beyond the partner,
// one per node, room for the mark that sends replies back to the partner.
func checkTransit(c *Config, k *checker) {
	if c.HA == nil {
		return
	}
	n := 0
	for i := range c.Links {
		if c.Links[i].Interface != c.HA.Sync.Interface || !c.IsTransit(i) {
			continue
		}
		n++
		l := &c.Links[i]
		p := fmt.Sprintf("links[%d]", i)
		if n > 1 {
			k.errorf(p+".interface", "a second transit link on %s: the partner picks its own uplink for the flows it gets; declare one transit link (its weight is the partner's share)", l.Interface)
		}
		if l.SNAT == nil || *l.SNAT {
			k.errorf(p+".snat", "a transit link to the partner must say snat: false: the partner translates, and a flow that kept the LAN host's address can go on through the partner after a takeover")
		}
		if l.Gateway6.IsValid() || l.Address6.IsValid() {
			k.errorf(p+".gateway6", "a transit link carries IPv4 only (conntrackd syncs IPv4)")
		}
		if l.Address4.IsValid() && l.Address4 != c.HA.Sync.Address.Addr() {
			k.errorf(p+".address4", "%s: a transit link's address is this node's sync address %s", l.Address4, c.HA.Sync.Address.Addr())
		}
		if !c.Has(p + ".probes") {
			k.errorf(p+".probes", "missing: a transit link's probes must reach beyond the partner (targets past its uplink), or its health would be the sync link's, not the partner's uplink's")
		}
		for j, pr := range l.Probes {
			if a, err := probeAddr(pr); err == nil && c.HA.Sync.Address.Masked().Contains(a) {
				k.errorf(fmt.Sprintf("%s.probes[%d].target", p, j), "%s is on the sync link: probe targets past the partner's uplink", a)
			}
		}
	}
	if n > 0 {
		for i, in := range c.HA.Instances {
			if in.Link != "" {
				k.errorf(fmt.Sprintf("ha.instances[%d].link", i), "a WAN instance (shared uplinks) with a transit link (split uplinks): a pair is one topology or the other (docs/ha.md)")
			}
		}
		o := c.EffectiveOutbound()
		if MarkSlots(o.MarkMask)-3 < len(c.Links) { // last resort, bond, replies to the partner
			k.errorf("outbound.mark_mask", "%#x has no room for %d links and the mark of replies sent back to the partner", o.MarkMask, len(c.Links))
		}
	}
}

// probeAddr returns the address a probe targets, when it is an address.
func probeAddr(pr Probe) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(pr.Target); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(pr.Target)
}
