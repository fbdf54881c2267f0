package outbound

import (
	"fmt"
	"strings"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/nft"
)

// mptcpRules are the output chain's rules for the machine's own MPTCP
// traffic when the mptcp section manages endpoints.
//
// A subflow that joins a connection (MP_JOIN) is never steered by policy:
// it leaves by the table of its source address (the per-link source
// rules), so each subflow keeps its own link; steering one to another
// link would masquerade it onto the path of its siblings.
//
// A new connection (MP_CAPABLE) starts where its route leads, the main
// table's default route unless the application bound an address, and is
// left alone there while that link takes new flows: its other subflows
// follow from the endpoints. When the route leads to a link that takes
// no new flows (down, drained: its carrier may well be up, the main
// table knows nothing of probes), the connection would never open, so
// its first subflow is steered by policy like plain TCP (and source
// NATed on the link it gets); the endpoints of the healthy links add the
// others. IPv6 is steered only with outbound.nat6.
func mptcpRules(cfg *config.Config, views []linkView) []string {
	if cfg.MPTCP == nil {
		return nil
	}
	rules := []string{`tcp option mptcp subtype 1 return comment "MPTCP join: leaves by its source address"`}
	var dead []string
	for _, v := range views {
		if v.st.State != monitor.Unknown && !v.st.AcceptsNew() {
			dead = append(dead, nft.Quote(v.cfg.Interface))
		}
	}
	if len(dead) > 0 {
		rules = append(rules, fmt.Sprintf(`tcp option mptcp subtype 0 oifname { %s } goto steer comment "new MPTCP connection routed to a link that takes no new flows: steered"`, strings.Join(dead, ", ")))
	}
	return append(rules, `tcp option mptcp exists return comment "new MPTCP connection: leaves by its route"`)
}
