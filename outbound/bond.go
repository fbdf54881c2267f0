package outbound

import (
	"fmt"
	"math/bits"

	"github.com/multihome/multihome/config"
)

// BondMark is the conntrack mark (within mask) of flows a bond policy
// sends to the bond proxy: the value just under the last-resort one.
func BondMark(mask uint32) uint32 {
	return mask - 1<<bits.TrailingZeros32(mask)
}

// bondPolicyRules replaces a bond policy's chain: its TCP flows get the
// bond mark (the bond_redirect chain sends them to the proxy), the rest
// goes to the fallback policy. Other policies' rules are returned as
// they are.
func bondPolicyRules(o config.Outbound, pol config.OutboundPolicy, polIndex map[string]int, rules []string) []string {
	if pol.Type != config.PolicyBond {
		return rules
	}
	mask := o.MarkMask
	return []string{
		fmt.Sprintf("meta l4proto tcp ct mark set ct mark & %s | %s accept comment \"bonded: to the proxy\"", hexMark(^mask), hexMark(BondMark(mask))),
		fmt.Sprintf("goto %s comment \"not TCP: fallback policy %s\"", policyChain(polIndex[pol.Fallback]), pol.Fallback),
	}
}

// bondRedirect is the NAT rule that hands bonded flows to the proxy's
// port, or nothing when no policy bonds.
func bondRedirect(cfg *config.Config, o config.Outbound) []string {
	if cfg.Bond == nil {
		return nil
	}
	for _, p := range o.Policies {
		if p.Type == config.PolicyBond {
			return []string{fmt.Sprintf("ct mark & %s == %s meta l4proto tcp redirect to :%d comment \"bonded flows to the bond proxy\"", hexMark(o.MarkMask), hexMark(BondMark(o.MarkMask)), cfg.Bond.Port)}
		}
	}
	return nil
}
