package outbound

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/nft"
	"github.com/multihome/multihome/route"
)

// TableFamily and TableName name the one nftables table multihome owns.
const (
	TableFamily = "inet"
	TableName   = "multihome"
)

// linkView is one link as the planner sees it.
type linkView struct {
	idx          int
	cfg          config.Link
	st           monitor.Status
	addr4, addr6 netip.Addr // configured, else learned from the interface
}

// member is a link a policy gives new flows to, with its share.
type member struct {
	idx    int
	weight int
}

// choice is what one policy does with new flows right now.
type choice struct {
	policy     config.OutboundPolicy
	members    []member // empty: last resort
	lastResort config.LastResort
	why        string // one line for the decision log
}

// plan is the complete desired kernel state.
type plan struct {
	ruleset nft.Ruleset
	routes  route.State
	// flush are sticky sets to empty (their link takes no new flows).
	flush   []string
	choices []choice
	text    string // ruleset + routes, for change detection
}

func (p *plan) String() string { return p.text }

// Render returns the nft ruleset and the ip rules and routes that
// multihome would apply for cfg with the links in the given states, as
// text: for `multihome run --dry-run` and golden tests. A nil statuses
// means every link is up; a link missing from a non-nil statuses is
// unknown (takes no new flows). Addresses not in the config are not
// learned: links without address4 are masqueraded and get no source rule.
func Render(cfg *config.Config, statuses []monitor.Status) (string, error) {
	o := cfg.EffectiveOutbound()
	if err := validate(cfg, o); err != nil {
		return "", err
	}
	views := viewsFor(cfg, statuses, nil)
	p := build(cfg, o, views, false)
	return p.text, nil
}

// RenderStandby is Render on the standby node of an HA pair with a
// transit link: replies of the flows the partner forwarded here go back
// to it (docs/ha.md, "Split uplinks"). Without a transit link it is
// Render.
func RenderStandby(cfg *config.Config, statuses []monitor.Status) (string, error) {
	o := cfg.EffectiveOutbound()
	if err := validate(cfg, o); err != nil {
		return "", err
	}
	return build(cfg, o, viewsFor(cfg, statuses, nil), true).text, nil
}

// validate checks references a config built in Go may get wrong; parsed
// configs have passed config's own checks.
func validate(cfg *config.Config, o config.Outbound) error {
	if len(cfg.Links) == 0 {
		return fmt.Errorf("no links")
	}
	if config.MarkSlots(o.MarkMask)-1 < len(cfg.Links) {
		return fmt.Errorf("mark mask %#x has no room for %d links", o.MarkMask, len(cfg.Links))
	}
	names := map[string]bool{}
	for _, p := range o.Policies {
		names[p.Name] = true
		for _, l := range p.Links {
			if cfg.LinkByName(l) == nil {
				return fmt.Errorf("policy %q: unknown link %q", p.Name, l)
			}
		}
	}
	if !names[o.DefaultPolicy] {
		return fmt.Errorf("default policy %q is not defined", o.DefaultPolicy)
	}
	for _, r := range o.Rules {
		if !names[r.Policy] {
			return fmt.Errorf("rule %q: unknown policy %q", r.Name, r.Policy)
		}
	}
	return nil
}

type learnedAddrs struct{ v4, v6 netip.Addr }

func viewsFor(cfg *config.Config, statuses []monitor.Status, learned map[string]learnedAddrs) []linkView {
	byName := map[string]monitor.Status{}
	for _, s := range statuses {
		byName[s.Link] = s
	}
	views := make([]linkView, len(cfg.Links))
	for i, l := range cfg.Links {
		v := linkView{idx: i, cfg: l, addr4: l.Address4, addr6: l.Address6}
		if statuses == nil {
			v.st = monitor.Status{Link: l.Name, Interface: l.Interface, State: monitor.Up, Health: monitor.Up, Carrier: true}
		} else if s, ok := byName[l.Name]; ok {
			v.st = s
		} else {
			v.st = monitor.Status{Link: l.Name, Interface: l.Interface}
		}
		if a, ok := learned[l.Name]; ok {
			if !v.addr4.IsValid() {
				v.addr4 = a.v4
			}
			if !v.addr6.IsValid() {
				v.addr6 = a.v6
			}
		}
		views[i] = v
	}
	return views
}

func weightOf(l config.Link) int {
	if l.Weight < 0 {
		return 0
	}
	return l.Weight
}

func priorityOf(l config.Link) int {
	if l.Priority <= 0 {
		return 1
	}
	return l.Priority
}

// decide picks the members that take new flows for policy p.
func decide(p config.OutboundPolicy, views []linkView, byName map[string]int) choice {
	c := choice{policy: p, lastResort: p.LastResort}
	var ok []linkView
	unjudged := false
	for _, name := range p.Links {
		v := views[byName[name]]
		if v.st.AcceptsNew() {
			ok = append(ok, v)
		}
		unjudged = unjudged || v.st.State == monitor.Unknown
	}
	if len(ok) == 0 {
		if unjudged {
			// At start, before the monitor's first verdicts: do not
			// refuse traffic that the main table may well carry.
			c.lastResort = config.LastResortMain
			c.why = "no member judged healthy yet: main table until the monitor's first verdicts"
			return c
		}
		c.why = fmt.Sprintf("no member accepts new flows: last resort %s", p.LastResort)
		return c
	}
	var notes []string
	ok, notes = avoidDegraded(p, ok, notes)
	ok, notes = spillOver(p, ok, notes)
	if p.Type == config.PolicyFailover {
		best := math.MaxInt
		for _, v := range ok {
			best = min(best, priorityOf(v.cfg))
		}
		ok = slices.DeleteFunc(ok, func(v linkView) bool { return priorityOf(v.cfg) != best })
		notes = append(notes, fmt.Sprintf("tier %d", best))
	}
	var parts []string
	c.members, parts = weigh(p, ok, views)
	c.why = strings.Join(append([]string{strings.Join(parts, " ")}, notes...), "; ")
	return c
}

// avoidDegraded keeps degraded members from new flows while some member
// is fully up (unless the policy says to use them anyway), noting it.
func avoidDegraded(p config.OutboundPolicy, ok []linkView, notes []string) ([]linkView, []string) {
	if p.Degraded == "use" {
		return ok, notes
	}
	var up []linkView
	var degraded []string
	for _, v := range ok {
		if v.st.State == monitor.Up {
			up = append(up, v)
		} else {
			degraded = append(degraded, v.cfg.Name)
		}
	}
	if len(up) > 0 && len(degraded) > 0 {
		ok = up
		notes = append(notes, "avoiding degraded: "+strings.Join(degraded, ","))
	}
	return ok, notes
}

// spillOver drops full members while some member has room, noting it.
func spillOver(p config.OutboundPolicy, ok []linkView, notes []string) ([]linkView, []string) {
	full := func(v linkView) bool {
		if p.Type == config.PolicyLeastLoaded && v.st.Saturated {
			return true
		}
		return p.Spillover > 0 && max(v.st.UtilDown, v.st.UtilUp) >= float64(p.Spillover)
	}
	var room []linkView
	var spilled []string
	for _, v := range ok {
		if full(v) {
			spilled = append(spilled, v.cfg.Name)
		} else {
			room = append(room, v)
		}
	}
	if len(room) > 0 {
		if len(spilled) > 0 {
			notes = append(notes, "full: "+strings.Join(spilled, ","))
		}
		ok = room
	} else if len(spilled) > 0 {
		notes = append(notes, "all members full: spreading anyway")
	}
	return ok, notes
}

// weigh turns the chosen members into weighted members, reduced by their
// greatest common divisor, and their "name×weight" descriptions.
func weigh(p config.OutboundPolicy, ok []linkView, views []linkView) ([]member, []string) {
	var members []member
	for _, v := range ok {
		w := weightOf(v.cfg)
		if p.Type == config.PolicyLeastLoaded {
			// Weight × spare capacity, in 5 % steps, at least one step.
			w = w * max(1, int(math.Round(v.st.Spare()*20)))
		}
		members = append(members, member{idx: v.idx, weight: w})
	}
	total := 0
	for _, m := range members {
		total += m.weight
	}
	if total == 0 { // only weight-0 links left: share equally
		for i := range members {
			members[i].weight = 1
		}
	}
	members = slices.DeleteFunc(members, func(m member) bool { return m.weight == 0 })
	g := 0
	for _, m := range members {
		g = gcd(g, m.weight)
	}
	var parts []string
	for i := range members {
		members[i].weight /= g
		parts = append(parts, fmt.Sprintf("%s×%d", views[members[i].idx].cfg.Name, members[i].weight))
	}
	return members, parts
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func hexMark(m uint32) string { return fmt.Sprintf("0x%08x", m) }

func linkChain(i int) string       { return fmt.Sprintf("link%d", i) }
func saveChain(i int) string       { return fmt.Sprintf("save%d", i) }
func policyChain(j int) string     { return fmt.Sprintf("pol%d", j) }
func pickChain(j, i int) string    { return fmt.Sprintf("pick%d_%d", j, i) }
func stickySet(j, i, f int) string { return fmt.Sprintf("sticky%d_%d_v%d", j, i, f) }

// newFlowCounter names the counter of the new flows a policy gives a
// link: "new/POLICY/LINK" ('/' is in neither kind of name), so that a
// reload reordering policies or links keeps each count with its pair.
func newFlowCounter(policy, link string) string { return "new/" + policy + "/" + link }

// lastResortCounter names the counter of the new flows a policy sends to
// its last resort: "last/POLICY".
func lastResortCounter(policy string) string { return "last/" + policy }

// build computes the desired kernel state: the links' rules, routes and
// chains, the hooks, the steering of new flows, one chain per policy and
// source NAT. standby says this node is not the master of an HA pair
// (it matters only with a transit link: transit.go).
func build(cfg *config.Config, o config.Outbound, views []linkView, standby bool) *plan {
	s := route.SchemeOf(o)
	byName := map[string]int{}
	for _, v := range views {
		byName[v.cfg.Name] = v.idx
	}
	p := &plan{}

	// Routing: every link gets its table whatever its health, so that
	// probes and existing flows can always use it.
	var rl []route.Link
	for _, v := range views {
		rl = append(rl, route.Link{Index: v.idx, Interface: v.cfg.Interface, Gateway4: v.cfg.Gateway4, Gateway6: v.cfg.Gateway6, Address4: v.addr4, Address6: v.addr6})
	}
	p.routes = s.Desired(rl)
	transit := cfg.TransitLink()
	if transit >= 0 {
		p.routes = s.WithPartnerReturn(p.routes, transit)
	}

	rs := &nft.Ruleset{Family: TableFamily, Name: TableName}
	rs.Header = append(rs.Header, "multihome outbound ruleset: generated, replaced atomically on every change; do not edit",
		fmt.Sprintf("marks in %s, tables %d-%d, rule priorities %d-%d", hexMark(o.MarkMask), s.TableBase, s.TableBase+config.TableRange-1, s.PriorityBase, s.PriorityBase+config.RulePriorityRange-1))
	restore, save, inbound := linkChains(rs, cfg, o, s, views)
	hookChains(rs, cfg, o, views, restore, save, inbound)
	if transit >= 0 {
		transitChains(rs, cfg, o, views, byName, standby)
	}
	polIndex := steerChain(rs, o)
	for j, pol := range o.Policies {
		c := decide(pol, views, byName)
		p.choices = append(p.choices, c)
		rs.Header = append(rs.Header, fmt.Sprintf("policy %s (%s): %s", pol.Name, pol.Type, c.why))
		policyChainFor(rs, p, o, j, pol, c, polIndex, views, byName)
	}
	natChains(rs, cfg, o, views)

	p.ruleset = *rs
	p.text = rs.String() + "\n# ip rules and routes\n" + p.routes.String()
	return p
}

// linkChains adds each link's header line and its two chains (mark a
// packet for the link, remember it in the flow's conntrack mark) and
// returns the vmap elements that restore and save those marks.
func linkChains(rs *nft.Ruleset, cfg *config.Config, o config.Outbound, s route.Scheme, views []linkView) (restore, save, inbound []string) {
	keep := ^o.MarkMask
	for _, v := range views {
		m := s.Mark(v.idx)
		rs.Header = append(rs.Header, fmt.Sprintf("link %s: interface %s mark %s table %d state %s%s", v.cfg.Name, v.cfg.Interface, hexMark(m), s.Table(v.idx), v.st.State, stateNotes(v.st)))
		rs.Chains = append(rs.Chains,
			nft.Chain{Name: linkChain(v.idx), Comment: "to " + v.cfg.Name, Rules: []string{
				fmt.Sprintf("meta mark set meta mark & %s | %s", hexMark(keep), hexMark(m)),
			}},
			nft.Chain{Name: saveChain(v.idx), Comment: "flow uses " + v.cfg.Name, Rules: []string{
				fmt.Sprintf("ct mark set ct mark & %s | %s", hexMark(keep), hexMark(m)),
			}})
		restore = append(restore, fmt.Sprintf("%s : goto %s", hexMark(m), linkChain(v.idx)))
		save = append(save, fmt.Sprintf("%s : goto %s", nft.Quote(v.cfg.Interface), saveChain(v.idx)))
		if cfg.IsTransit(v.idx) {
			// Flows arriving from the partner are not inbound flows of
			// the transit link: they leave by this node's own uplinks
			// (transitChains).
			continue
		}
		inbound = append(inbound, save[len(save)-1])
	}
	rs.Chains = append(rs.Chains, nft.Chain{Name: "unreachable", Comment: "last resort: no route", Rules: []string{
		fmt.Sprintf("meta mark set meta mark | %s", hexMark(s.LastResort())),
	}})
	return restore, save, inbound
}

// hookChains adds the chains on the netfilter hooks: known flows keep
// their link, inbound flows' replies leave by it, local traffic and
// pinned sockets (probes) are left alone, new flows go to steer (or, from
// an HA partner over the transit link, to this node's own uplinks).
func hookChains(rs *nft.Ruleset, cfg *config.Config, o config.Outbound, views []linkView, restore, save, inbound []string) {
	restoreRule := fmt.Sprintf("ct mark & %s vmap { %s } comment \"known flow: keep its link\"", hexMark(o.MarkMask), strings.Join(restore, ", "))
	saveMap := strings.Join(save, ", ")
	local := "fib daddr type { local, broadcast, multicast } return"
	pre := []string{
		restoreRule,
		"ct state != new return",
	}
	if len(inbound) > 0 {
		pre = append(pre, fmt.Sprintf("iifname vmap { %s } comment \"inbound flow: replies leave by its link\"", strings.Join(inbound, ", ")))
	}
	pre = append(pre, local)
	pre = append(pre, fromPartnerRules(cfg)...)
	pre = append(pre, "goto steer")

	rs.Chains = append(rs.Chains,
		nft.Chain{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: "mangle", Policy: "accept", Rules: pre},
		nft.Chain{Name: "output", Type: "route", Hook: "output", Priority: "mangle", Policy: "accept", Rules: slices.Concat([]string{
			restoreRule,
			"ct state != new return",
			fmt.Sprintf("meta mark & %s != 0 return comment \"pinned socket (probes): routed by its own mark\"", hexMark(o.MarkMask)),
		}, mptcpRules(cfg, views), []string{
			local,
			"goto steer",
		})},
		nft.Chain{Name: "postrouting", Type: "filter", Hook: "postrouting", Priority: "mangle", Policy: "accept", Rules: []string{
			fmt.Sprintf("ct state new ct direction original oifname vmap { %s } comment \"remember the link a new flow left by\"", saveMap),
		}},
	)
}

// steerChain adds the steering chain (ordered rules, then the default
// policy) and returns each policy's index.
func steerChain(rs *nft.Ruleset, o config.Outbound) map[string]int {
	polIndex := map[string]int{}
	for j, pol := range o.Policies {
		polIndex[pol.Name] = j
	}
	var steer []string
	if !o.NAT6 {
		steer = append(steer, "meta nfproto ipv6 return comment \"IPv6 leaves by source address (nat6 off)\"")
	}
	for _, r := range o.Rules {
		for _, m := range matchExprs(r) {
			steer = append(steer, fmt.Sprintf("%sgoto %s comment %s", m, policyChain(polIndex[r.Policy]), nft.Quote("rule "+r.Name)))
		}
	}
	steer = append(steer, fmt.Sprintf("goto %s comment %s", policyChain(polIndex[o.DefaultPolicy]), nft.Quote("default policy "+o.DefaultPolicy)))
	rs.Chains = append(rs.Chains, nft.Chain{Name: "steer", Comment: "new flows: first matching rule picks the policy", Rules: steer})
	return polIndex
}

// policyChainFor adds policy j's chain, which sends a new flow to one of
// the members chosen by decide (c), weighted, sticky or to the last
// resort.
func policyChainFor(rs *nft.Ruleset, p *plan, o config.Outbound, j int, pol config.OutboundPolicy, c choice, polIndex map[string]int, views []linkView, byName map[string]int) {
	target := func(i int) string { return pickChain(j, i) }
	var rules []string
	if pol.Type == config.PolicySticky {
		rules = stickyRules(rs, p, j, pol, c, views, byName)
	}
	if pol.Type != config.PolicyBond {
		pickChains(rs, j, pol, byName)
	}
	switch {
	case len(c.members) == 0 && c.lastResort == config.LastResortUnreachable:
		rules = append(rules, lastResortCount(pol)+"goto unreachable comment \"no link accepts new flows\"")
	case len(c.members) == 0:
		rules = append(rules, lastResortCount(pol)+"return comment \"no link accepts new flows: main table\"")
	default:
		rules = append(rules, memberRules(c, target)...)
	}
	rules = bondPolicyRules(o, pol, polIndex, rules)
	rs.Chains = append(rs.Chains, nft.Chain{Name: policyChain(j), Comment: fmt.Sprintf("policy %s (%s)", pol.Name, pol.Type), Rules: rules})
}

// memberRules send a new flow to one of c's members (at least one),
// weighted: target names a member's chain.
func memberRules(c choice, target func(int) string) []string {
	if len(c.members) == 1 {
		return []string{"goto " + target(c.members[0].idx)}
	}
	var ranges []string
	n := 0
	for _, m := range c.members {
		if m.weight == 1 {
			ranges = append(ranges, fmt.Sprintf("%d : goto %s", n, target(m.idx)))
		} else {
			ranges = append(ranges, fmt.Sprintf("%d-%d : goto %s", n, n+m.weight-1, target(m.idx)))
		}
		n += m.weight
	}
	return []string{fmt.Sprintf("numgen random mod %d vmap { %s }", n, strings.Join(ranges, ", "))}
}

// stickyRules adds a sticky policy's sets and pick chains (flushing the
// sets of members that take no new flows) and returns the rules that send
// a stuck source back to its member.
func stickyRules(rs *nft.Ruleset, p *plan, j int, pol config.OutboundPolicy, c choice, views []linkView, byName map[string]int) []string {
	var rules []string
	accepting := map[int]bool{}
	for _, m := range c.members {
		accepting[m.idx] = true
	}
	for _, name := range pol.Links {
		i := byName[name]
		for _, f := range []int{4, 6} {
			rs.Sets = append(rs.Sets, nft.Set{Name: stickySet(j, i, f), Type: fmt.Sprintf("ipv%d_addr", f), Flags: []string{"dynamic", "timeout"}, Timeout: pol.StickyTimeout.D(),
				Size: pol.StickySize, Comment: fmt.Sprintf("sources stuck to %s by %s", name, pol.Name)})
			if !views[i].st.AcceptsNew() {
				p.flush = append(p.flush, stickySet(j, i, f))
			}
		}
		if accepting[i] {
			rules = append(rules,
				fmt.Sprintf("ip saddr @%s goto %s", stickySet(j, i, 4), pickChain(j, i)),
				fmt.Sprintf("ip6 saddr @%s goto %s", stickySet(j, i, 6), pickChain(j, i)))
		}
	}
	return rules
}

// pickChains adds, for each member i of policy j, the chain its new
// flows go through (pickJ_I: record the source for sticky, count, goto
// linkI) and the named counter of new flows it gives that member
// (new/POLICY/LINK), and the counter of its flows on the last resort
// (last/POLICY), read by the multihome_outbound_new_flows_total and
// multihome_outbound_last_resort_flows_total collector.
func pickChains(rs *nft.Ruleset, j int, pol config.OutboundPolicy, byName map[string]int) {
	for _, name := range pol.Links {
		i := byName[name]
		var rules []string
		if pol.Type == config.PolicySticky {
			rules = append(rules,
				fmt.Sprintf("meta nfproto ipv4 update @%s { ip saddr }", stickySet(j, i, 4)),
				fmt.Sprintf("meta nfproto ipv6 update @%s { ip6 saddr }", stickySet(j, i, 6)))
		}
		counter := newFlowCounter(pol.Name, name)
		rules = append(rules, fmt.Sprintf("counter name %s goto %s", nft.Quote(counter), linkChain(i)))
		rs.Counters = append(rs.Counters, nft.Counter{Name: counter, Comment: fmt.Sprintf("new flows %s gives %s", pol.Name, name)})
		rs.Chains = append(rs.Chains, nft.Chain{Name: pickChain(j, i), Comment: pol.Name + " picks " + name, Rules: rules})
	}
	// Declared whatever the links' states, so that a link event leaves
	// the counters alone (and the transaction incremental).
	rs.Counters = append(rs.Counters, nft.Counter{Name: lastResortCounter(pol.Name), Comment: fmt.Sprintf("new flows %s sends to its last resort (%s)", pol.Name, pol.LastResort)})
}

// lastResortCount is the statement counting a policy's new flows on its
// last resort ("" for a bond policy, whose rules are its own).
func lastResortCount(pol config.OutboundPolicy) string {
	if pol.Type == config.PolicyBond {
		return ""
	}
	return fmt.Sprintf("counter name %s ", nft.Quote(lastResortCounter(pol.Name)))
}

// natChains adds source NAT per uplink (and the bond's redirect).
func natChains(rs *nft.Ruleset, cfg *config.Config, o config.Outbound, views []linkView) {
	var nat []string
	for _, v := range views {
		dev := nft.Quote(v.cfg.Interface)
		if snatOn(cfg, o, v.idx) {
			switch snat := cfg.SNAT4(v.idx); {
			case snat.IsValid() && snat != v.cfg.Address4:
				// An HA virtual address (config.SNAT4): the node's own
				// traffic (probes) keeps its own address, or its replies
				// would go to whichever node holds the virtual one.
				nat = append(nat, fmt.Sprintf("oifname %s ip saddr != %s snat ip to %s", dev, v.cfg.Address4, snat))
			case snat.IsValid():
				nat = append(nat, fmt.Sprintf("oifname %s snat ip to %s", dev, snat))
			default:
				nat = append(nat, fmt.Sprintf("oifname %s meta nfproto ipv4 masquerade", dev))
			}
		}
		if o.NAT6 && (v.cfg.Gateway6.IsValid() || v.cfg.Address6.IsValid()) {
			nat = append(nat, fmt.Sprintf("oifname %s meta nfproto ipv6 masquerade", dev))
		}
	}
	rs.Chains = append(rs.Chains, nft.Chain{Name: "nat_out", Type: "nat", Hook: "postrouting", Priority: "srcnat", Policy: "accept", Rules: nat})
	if r := bondRedirect(cfg, o); r != nil {
		rs.Chains = append(rs.Chains, nft.Chain{Name: "bond_redirect", Type: "nat", Hook: "prerouting", Priority: "dstnat", Policy: "accept", Rules: r})
	}
}

func stateNotes(s monitor.Status) string {
	var n []string
	if s.HoldDown {
		n = append(n, "hold-down")
	}
	if s.Admin != monitor.AdminNone {
		n = append(n, "admin "+s.Admin.String())
	}
	if s.Saturated {
		n = append(n, "saturated")
	}
	if len(n) == 0 {
		return ""
	}
	return " (" + strings.Join(n, ", ") + ")"
}

// matchExprs renders a rule's conditions as nft match expressions, one
// string per address family needed (each ends with a space, or is empty
// for a rule that matches everything).
func matchExprs(r config.OutboundRule) []string {
	fam := 0
	for _, p := range append(slices.Clone(r.Src), r.Dst...) {
		if p.Addr().Is4() {
			fam = 4
		} else {
			fam = 6
		}
	}
	switch r.Proto {
	case "icmp":
		fam = 4
	case "icmpv6":
		fam = 6
	}
	fams := []int{fam}
	if fam == 0 && r.DSCP != nil {
		fams = []int{4, 6} // dscp needs ip or ip6
	}
	var out []string
	for _, f := range fams {
		var b strings.Builder
		ipk := map[int]string{0: "ip", 4: "ip", 6: "ip6"}[f]
		if r.IIF != "" {
			fmt.Fprintf(&b, "iifname %s ", nft.Quote(r.IIF))
		}
		if len(r.Src) > 0 {
			fmt.Fprintf(&b, "%s saddr %s ", ipk, prefixSet(r.Src))
		}
		if len(r.Dst) > 0 {
			fmt.Fprintf(&b, "%s daddr %s ", ipk, prefixSet(r.Dst))
		}
		if r.DSCP != nil {
			fmt.Fprintf(&b, "%s dscp %d ", ipk, *r.DSCP)
		}
		switch {
		case r.Proto == "tcp" || r.Proto == "udp":
			if len(r.SPort)+len(r.DPort) == 0 {
				fmt.Fprintf(&b, "meta l4proto %s ", r.Proto)
			}
			if len(r.SPort) > 0 {
				fmt.Fprintf(&b, "%s sport %s ", r.Proto, r.SPort)
			}
			if len(r.DPort) > 0 {
				fmt.Fprintf(&b, "%s dport %s ", r.Proto, r.DPort)
			}
		case r.Proto == "icmp" || r.Proto == "icmpv6":
			fmt.Fprintf(&b, "meta l4proto %s ", map[string]string{"icmp": "icmp", "icmpv6": "ipv6-icmp"}[r.Proto])
		case len(r.SPort) > 0 || len(r.DPort) > 0:
			b.WriteString("meta l4proto { tcp, udp } ")
			if len(r.SPort) > 0 {
				fmt.Fprintf(&b, "th sport %s ", r.SPort)
			}
			if len(r.DPort) > 0 {
				fmt.Fprintf(&b, "th dport %s ", r.DPort)
			}
		}
		out = append(out, b.String())
	}
	return out
}

func prefixSet(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Masked().String()
	}
	if len(s) == 1 {
		return s[0]
	}
	return "{ " + strings.Join(s, ", ") + " }"
}
