package outbound

import "github.com/multihome/multihome/config"

// mptcpRules are the output chain's rules for the machine's own MPTCP
// subflows when the mptcp section manages endpoints: a subflow's SYN
// (MP_CAPABLE or MP_JOIN) is not steered by policy, so it leaves by the
// table of its source address (the per-link source rules) and each
// subflow keeps its own link; steering one to another link would
// masquerade it onto the same path as its siblings.
func mptcpRules(cfg *config.Config) []string {
	if cfg.MPTCP == nil {
		return nil
	}
	return []string{`tcp option mptcp exists return comment "MPTCP subflow: leaves by its source address"`}
}
