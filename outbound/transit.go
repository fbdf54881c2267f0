package outbound

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/nft"
	"github.com/multihome/multihome/route"
)

// The split-uplinks HA topology (docs/ha.md): each node has its own
// uplinks and reaches the partner's through a transit link on the sync
// interface (config.Config.TransitLink), without SNAT. The node that
// holds the LAN sends some new flows to the partner; the partner must
//
//   - send them out by its own uplinks only, never back over the transit
//     link (no loop): the from_partner chain, and a forward-hook guard;
//   - send their replies back over the transit link while it is the
//     standby, so that the flow's both directions cross the node that
//     holds it (conntrack there sees the whole flow): the reply mark
//     route.Scheme.PartnerReturn and its rules. Once it is master (the
//     partner lost the LAN), replies go straight to the LAN and the flows
//     carry on through it alone.

// snatOn reports whether flows leaving link i are source-NATed.
func snatOn(cfg *config.Config, o config.Outbound, i int) bool {
	if s := cfg.Links[i].SNAT; s != nil {
		return *s
	}
	return *o.SNAT
}

// transitIface returns the transit link's interface, or "".
func transitIface(cfg *config.Config) string {
	if t := cfg.TransitLink(); t >= 0 {
		return cfg.Links[t].Interface
	}
	return ""
}

// ownUplinks returns the interfaces of the links that are not the
// transit link.
func ownUplinks(cfg *config.Config) []string {
	var out []string
	for i, l := range cfg.Links {
		if !cfg.IsTransit(i) {
			out = append(out, nft.Quote(l.Interface))
		}
	}
	return out
}

// partnerReturnChain is, on a standby with a transit link, the chain
// that sends back to the partner a reply arriving on an own uplink for a
// forwarded flow (not for this node itself). It hooks prerouting after
// destination NAT (priority filter), where a reply's destination is the
// LAN host again, not this node's own (SNAT) address; the routing
// decision comes after every prerouting chain, so its mark wins over the
// link mark the mangle chain restored.
func partnerReturnChain(rs *nft.Ruleset, cfg *config.Config, o config.Outbound, standby bool) {
	if !standby || cfg.TransitLink() < 0 {
		return
	}
	own := ownUplinks(cfg)
	if len(own) == 0 {
		return
	}
	s := route.SchemeOf(o)
	rs.Chains = append(rs.Chains, nft.Chain{Name: "partner_return", Type: "filter", Hook: "prerouting", Priority: "filter", Policy: "accept", Rules: []string{
		fmt.Sprintf("meta nfproto ipv4 ct direction reply iifname { %s } fib daddr type != local meta mark set meta mark & %s | %s comment \"standby: replies go back to the partner, which holds the flow and the LAN\"",
			strings.Join(own, ", "), hexMark(^o.MarkMask), hexMark(s.PartnerReturn())),
	}})
}

// fromPartnerRules send new flows arriving over the transit link to the
// from_partner chain.
func fromPartnerRules(cfg *config.Config) []string {
	dev := transitIface(cfg)
	if dev == "" {
		return nil
	}
	return []string{fmt.Sprintf("iifname %s goto from_partner comment \"forwarded by the partner: leave by our own uplinks\"", nft.Quote(dev))}
}

// transitChains adds the from_partner chain (the partner's flows leave by
// this node's own healthy uplinks, by weight; none: unreachable, never
// back) and the forward guard against a loop over the transit link.
func transitChains(rs *nft.Ruleset, cfg *config.Config, o config.Outbound, views []linkView, byName map[string]int, standby bool) {
	t := cfg.TransitLink()
	dev := nft.Quote(cfg.Links[t].Interface)
	own := config.OutboundPolicy{Name: "from_partner", Type: config.PolicyWeighted, LastResort: config.LastResortUnreachable}
	for i, l := range cfg.Links {
		if i != t {
			own.Links = append(own.Links, l.Name)
		}
	}
	c := decide(own, views, byName)
	if len(c.members) == 0 && c.lastResort == config.LastResortMain {
		// Before the monitor's first verdicts decide falls back to the
		// main table, whose default route may be the transit link.
		c.lastResort = config.LastResortUnreachable
	}
	role := "master"
	if standby {
		role = "standby: replies of the partner's flows go back to it"
	}
	rs.Header = append(rs.Header, fmt.Sprintf("transit link %s (HA partner, %s); flows from the partner: %s", cfg.Links[t].Name, role, c.why))
	var rules []string
	if len(c.members) == 0 {
		rules = []string{"goto unreachable comment \"no own uplink accepts new flows: never back to the partner\""}
	} else {
		rules = memberRules(c, linkChain)
	}
	partnerReturnChain(rs, cfg, o, standby)
	rs.Chains = append(rs.Chains,
		nft.Chain{Name: "from_partner", Comment: "new flows forwarded by the HA partner", Rules: rules},
		nft.Chain{Name: "transit_loop", Type: "filter", Hook: "forward", Priority: "mangle", Policy: "accept", Rules: []string{
			fmt.Sprintf("iifname %s oifname %s drop comment \"never back to the partner (loop)\"", dev, dev),
		}})
}

// StandbyText renders what the ruleset holds in addition on the standby
// of a split pair (the chain that sends the partner's replies back to
// it), for `multihome run --dry-run`; "" without a transit link.
func StandbyText(cfg *config.Config) string {
	if cfg.TransitLink() < 0 {
		return ""
	}
	rs := nft.Ruleset{Family: TableFamily, Name: TableName}
	partnerReturnChain(&rs, cfg, cfg.EffectiveOutbound(), true)
	return rs.String()
}

// dropEarlyPartnerFlows deletes from conntrack, once the first ruleset is
// in place, the flows the HA partner sent over the transit link before it
// was (unmarked, from the partner's transit address): they left without
// source NAT, which applies only to a flow's first packet, and a flow
// whose packets keep coming keeps its entry: the partner's probes (one
// echo id per target) stayed unanswered for as long as they ran, and its
// transit link never came up when it started before this node
// (ha TestPairSplitUplinks, both nodes starting together).
func (c *Controller) dropEarlyPartnerFlows() {
	t := c.cfg.TransitLink()
	if t < 0 || !c.cfg.Links[t].Gateway4.IsValid() {
		return
	}
	partner := netip.PrefixFrom(c.cfg.Links[t].Gateway4, 32)
	n, err := c.ct.deleteMatching(0, c.o.MarkMask, config.OutboundRule{Src: []netip.Prefix{partner}})
	if err != nil {
		c.log.Warn("deleting the partner's flows from before the ruleset", "partner", partner.Addr(), "deleted", n, "err", err)
		return
	}
	if n > 0 {
		c.log.Info("deleted the partner's flows from before the ruleset (not source-NATed)", "partner", partner.Addr(), "deleted", n)
	}
}
