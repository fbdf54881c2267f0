package bgp

import (
	"fmt"
	"net/netip"
	"strings"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/multihome/multihome/config"
)

// Names of the GoBGP defined sets and policy multihome owns.
const (
	prefixSet4   = "mh-site-v4"
	prefixSet6   = "mh-site-v6"
	exportPolicy = "mh-export"
	importPolicy = "mh-import"
)

func neighborSet(i int) string { return fmt.Sprintf("mh-nbr-%d", i) }

// announce is what one neighbour is sent.
type announce struct {
	Withdraw bool // nothing
	Prepend  int  // extra copies of our ASN
}

// decide returns what each neighbour of b is sent, given which links are
// usable and which neighbours are held down (BFD down, flap damping).
func decide(b *config.BGP, usable map[string]bool, down map[netip.Addr]bool) []announce {
	out := make([]announce, len(b.Neighbors))
	for i, n := range b.Neighbors {
		a := announce{Prepend: n.EffectivePrepend()}
		if !usable[n.Link] || down[n.Address] {
			if b.OnDown == config.BGPPrepend {
				a.Prepend = max(a.Prepend, b.DownPrepend)
			} else {
				a.Withdraw = true
			}
		}
		out[i] = a
	}
	return out
}

// drain applies on_drain to the neighbours of drained links that decide
// left announced: a drained link takes no new inbound traffic either.
func drain(b *config.BGP, ann []announce, drained map[string]bool) []announce {
	for i, n := range b.Neighbors {
		if i >= len(ann) || !drained[n.Link] || ann[i].Withdraw {
			continue
		}
		if b.OnDrain == config.BGPWithdraw {
			ann[i] = announce{Withdraw: true}
		} else {
			ann[i].Prepend = max(ann[i].Prepend, b.DownPrepend)
		}
	}
	return ann
}

// policies renders the whole GoBGP policy for b and the decisions: one
// export statement per neighbour and family, matching the site's prefixes
// and that neighbour only; everything else is rejected, on import too.
func policies(b *config.BGP, ann []announce) *api.SetPoliciesRequest {
	r := &api.SetPoliciesRequest{}
	var p4, p6 []*api.Prefix
	for _, p := range b.Prefixes {
		x := &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())}
		if p.Addr().Is4() {
			p4 = append(p4, x)
		} else {
			p6 = append(p6, x)
		}
	}
	if len(p4) > 0 {
		r.DefinedSets = append(r.DefinedSets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: prefixSet4, Prefixes: p4})
	}
	if len(p6) > 0 {
		r.DefinedSets = append(r.DefinedSets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: prefixSet6, Prefixes: p6})
	}
	pol := &api.Policy{Name: exportPolicy}
	for i, n := range b.Neighbors {
		bits := 32
		set := prefixSet4
		if !n.Address.Is4() {
			bits, set = 128, prefixSet6
		}
		if !n.Address.Is4() && len(p6) == 0 || n.Address.Is4() && len(p4) == 0 {
			continue
		}
		r.DefinedSets = append(r.DefinedSets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: neighborSet(i),
			List: []string{fmt.Sprintf("%s/%d", n.Address, bits)},
		})
		act := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT}
		a := ann[i]
		if a.Withdraw {
			act.RouteAction = api.RouteAction_ROUTE_ACTION_REJECT
		} else {
			if a.Prepend > 0 {
				act.AsPrepend = &api.AsPrependAction{Asn: b.ASN, Repeat: uint32(a.Prepend)}
			}
			if len(n.Communities) > 0 {
				act.Community = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: n.Communities}
			}
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: fmt.Sprintf("mh-nbr-%d-%s", i, set[len(set)-2:]),
			Conditions: &api.Conditions{
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set},
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSet(i)},
			},
			Actions: act,
		})
	}
	r.Policies = []*api.Policy{pol, {Name: importPolicy, Statements: []*api.Statement{{
		Name:       "mh-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}}
	r.Assignments = []*api.PolicyAssignment{
		{Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT},
		// GoBGP runs its global import policy on locally originated paths
		// too: accept those, reject everything learnt from neighbours.
		{Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT, Policies: []*api.Policy{{Name: importPolicy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}
	return r
}

// render is a human-readable form of the decisions, for logs and golden
// tests: one line per neighbour.
func render(b *config.BGP, ann []announce) string {
	var s strings.Builder
	for i, n := range b.Neighbors {
		a := ann[i]
		fmt.Fprintf(&s, "%s AS%d via %s: ", n.Address, n.ASN, n.Link)
		switch {
		case a.Withdraw:
			s.WriteString("withdrawn")
		case a.Prepend > 0:
			fmt.Fprintf(&s, "announced, prepend %d", a.Prepend)
		default:
			s.WriteString("announced")
		}
		if !a.Withdraw && len(n.Communities) > 0 {
			fmt.Fprintf(&s, ", communities %s", strings.Join(n.Communities, " "))
		}
		s.WriteByte('\n')
	}
	return s.String()
}
