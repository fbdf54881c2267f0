package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// dpinger's defaults in pfSense (return_dpinger_defaults in gwlb.inc).
const (
	pfInterval    = 500 * time.Millisecond
	pfLossIntv    = 2000 * time.Millisecond
	pfTimePeriod  = 60000 * time.Millisecond
	pfLatencyHigh = 500 * time.Millisecond
	pfLossHigh    = 20
)

// The gateway item fields with an equivalent; the rest are noted.
var pfMapped = []string{"interface", "gateway", "name", "weight", "ipprotocol", "interval", "loss_interval", "time_period",
	"latencyhigh", "losshigh", "monitor", "descr", "disabled", "defaultgw"}

type pfsense struct {
	name      string
	root      *node
	d         *doc
	ifaces    *node            // <interfaces>
	gw        map[string]*link // gateway name → link (nil: not imported)
	gwLine    map[string]int
	linkNames map[string]bool
	polNames  map[string]bool
	groups    map[string]*policy // group name → policy
	single    map[string]*policy // gateway name → its own failover policy
	tiers     []tiered
	migrate   map[string]bool // groups with keep_failover_states kill
}

// PfSense converts the gateways, gateway groups and policy-routing
// firewall rules of a pfSense or OPNsense config.xml.
func PfSense(name string, data []byte) (*Result, error) {
	root, err := parseXML(name, data)
	if err != nil {
		return nil, err
	}
	if root.name != "pfsense" && root.name != "opnsense" {
		return nil, fmt.Errorf("%s:%d: root element <%s>: want <pfsense> or <opnsense>", name, root.line, root.name)
	}
	p := &pfsense{name: name, root: root, d: &doc{}, ifaces: root.child("interfaces"), gw: map[string]*link{}, gwLine: map[string]int{},
		linkNames: map[string]bool{}, polNames: map[string]bool{}, groups: map[string]*policy{}, single: map[string]*policy{}, migrate: map[string]bool{}}
	p.d.title = []string{
		"multihome.yaml imported from " + root.name + " (" + name + ") by `multihome import pfsense`.",
		"Check it with `multihome check-config FILE`. Settings without an exact",
		"equivalent are listed in NOTE comments where they would go (and on stderr);",
		"docs/import.md shows what maps to what.",
	}
	gws := root.path("gateways").all("gateway_item")
	gws = append(gws, root.path("OPNsense/Gateways").all("gateway_item")...)
	for _, g := range gws {
		p.gateway(g)
	}
	if len(p.d.links) == 0 {
		return nil, fmt.Errorf("%s: no enabled gateway (<gateways><gateway_item>): nothing to import", name)
	}
	for _, g := range root.path("gateways").all("gateway_group") {
		p.group(g)
	}
	p.defaultGateway()
	p.filterRules()
	for _, r := range p.d.rules {
		for g := range p.migrate {
			if pol := p.groups[g]; pol != nil && r.policy == pol.name {
				r.migrate = true
			}
		}
	}
	assignTiers(p.d, p.tiers)
	if sw := root.path("system/gw_switch_default"); sw != nil {
		p.note(&p.d.notes, sw.line, "system gw_switch_default: multihome does not touch the main table's default route; outbound.default_policy steers new flows")
	}
	if k := root.path("system/kill_states"); k != nil {
		p.note(&p.d.notes, k.line, "system kill_states: multihome deletes exactly a failed link's flows (outbound.flush_on_failure, on by default)")
	}
	p.d.notes = append(p.d.notes, Note{Pos: name, Msg: "interface names are the firewall's (FreeBSD: igb0, vtnet0, pppoe0): set each link's Linux interface"})
	return p.d.result(), nil
}

func (p *pfsense) pos(line int) string { return fmt.Sprintf("%s:%d", p.name, line) }

func (p *pfsense) note(to *[]Note, line int, format string, a ...any) {
	*to = append(*to, Note{Pos: p.pos(line), Msg: fmt.Sprintf(format, a...)})
}

func fieldLine(n *node, name string) int {
	if c := n.child(name); c != nil {
		return c.line
	}
	return n.line
}

// ms reads a number of milliseconds; a bad value is noted and def used.
func (p *pfsense) ms(g *node, field string, def time.Duration, notes *[]Note) time.Duration {
	v := g.get(field)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		p.note(notes, fieldLine(g, field), "gateway %s: %s %q is not a positive number: using the default %s", g.get("name"), field, v, dur(def))
		return def
	}
	return time.Duration(n) * time.Millisecond
}

// gateway makes or extends the link of a gateway item's interface. It is
// a flat table of the item's fields (address, monitor, weight, the
// unmapped flags, then dpinger's thresholds), in docs/import.md's order.
func (p *pfsense) gateway(g *node) {
	name := g.get("name")
	p.gwLine[name] = g.line
	if g.has("disabled") {
		p.note(&p.d.droppedLinks, fieldLine(g, "disabled"), "gateway %s is disabled: not imported", name)
		p.gw[name] = nil
		return
	}
	ifname := g.get("interface")
	inode := p.ifaces.child(ifname)
	var notes []Note
	dev := ifname
	if inode == nil {
		p.note(&notes, fieldLine(g, "interface"), "gateway %s: interface %q is not in <interfaces>: set the kernel interface", name, ifname)
	} else if d := inode.get("if"); d != "" {
		dev = d
	}
	v6 := g.get("ipprotocol") == "inet6"
	var l *link
	for _, o := range p.d.links {
		if o.iface == dev && (v6 && !o.fam6 || !v6 && !o.family4) {
			l = o
		}
	}
	if l == nil {
		l = &link{name: linkName(name, p.linkNames), iface: dev, source: fmt.Sprintf("%s gateway %s", p.pos(g.line), name)}
		p.d.links = append(p.d.links, l)
	} else {
		l.source += fmt.Sprintf(" + %s gateway %s", p.pos(g.line), name)
		p.note(&notes, g.line, "gateway %s: same interface as %s: one link; its monitoring settings are %s's", name, l.v4name+l.v6name, l.v4name+l.v6name)
	}
	p.gw[name] = l
	gw, err := netip.ParseAddr(g.get("gateway"))
	switch {
	case g.get("gateway") == "dynamic" || g.get("gateway") == "":
		p.note(&notes, fieldLine(g, "gateway"), "gateway %s: dynamic (DHCP, PPPoE): multihome does not learn gateways: set gateway%s", name, map[bool]string{false: "4", true: "6"}[v6])
	case err != nil || gw.Is4() == v6:
		p.note(&notes, fieldLine(g, "gateway"), "gateway %s: %q is not an IPv%s address: not imported", name, g.get("gateway"), map[bool]string{false: "4", true: "6"}[v6])
	case v6:
		l.gw6 = gw
	default:
		l.gw4 = gw
	}
	if inode != nil && !v6 {
		if a, err := netip.ParseAddr(inode.get("ipaddr")); err == nil && a.Is4() {
			l.addr4 = a
		}
	}
	if v6 {
		l.fam6, l.v6name = true, name
	} else {
		l.family4, l.v4name = true, name
	}
	if mon := g.get("monitor"); mon != "" {
		if a, err := netip.ParseAddr(mon); err != nil || a.Is4() == v6 {
			p.note(&notes, fieldLine(g, "monitor"), "gateway %s: monitor %q is not an IPv%s address: not imported", name, mon, map[bool]string{false: "4", true: "6"}[v6])
		} else {
			l.probes = append(l.probes, probe{"icmp", a.String()})
		}
	} else if gw.IsValid() {
		l.probes = append(l.probes, probe{"icmp", gw.String()}) // dpinger pings the gateway
	}
	if w := g.get("weight"); w != "" {
		if n, err := strconv.Atoi(w); err == nil && n >= 1 {
			l.weight = n
		} else {
			p.note(&notes, fieldLine(g, "weight"), "gateway %s: weight %q: want 1-30, not imported", name, w)
		}
	}
	for _, c := range g.children {
		if slices.Contains(pfMapped, c.name) || p.root.name == "opnsense" && (c.text == "" || c.text == "0") {
			continue // OPNsense writes every field, unset ones empty or 0
		}
		switch c.name {
		case "monitor_disable":
			p.note(&notes, c.line, "gateway %s: monitor_disable (always online): multihome always probes its links", name)
		case "action_disable":
			p.note(&notes, c.line, "gateway %s: action_disable (monitor only): multihome acts on what it measures", name)
		case "force_down":
			p.note(&notes, c.line, "gateway %s: force_down: run `multihome link down %s` once the daemon runs", name, l.name)
		case "latencylow", "losslow":
			p.note(&notes, c.line, "gateway %s: %s %s: a warning colour in pfSense's status only; multihome has one degraded threshold (latencyhigh/losshigh)", name, c.name, c.text)
		case "priority":
			p.note(&notes, c.line, "gateway %s: priority %s (OPNsense's choice of the default gateway): multihome's is outbound.default_policy", name, c.text)
		case "gw_down_kill_states":
			p.note(&notes, c.line, "gateway %s: gw_down_kill_states: multihome deletes exactly a failed link's flows (outbound.flush_on_failure)", name)
		default:
			p.note(&notes, c.line, "gateway %s: %s %q: no equivalent, not imported", name, c.name, c.text)
		}
	}
	l.notes = append(l.notes, notes...)
	if l.health != (health{}) {
		return // the second family of a link: the first one's settings
	}
	h := &l.health
	h.interval = p.ms(g, "interval", pfInterval, &l.notes)
	h.timeout = p.ms(g, "loss_interval", pfLossIntv, &l.notes)
	h.window = p.ms(g, "time_period", pfTimePeriod, &l.notes)
	if h.window < 2*h.interval {
		h.window = 2 * h.interval
	}
	h.degRTT = p.ms(g, "latencyhigh", pfLatencyHigh, &l.notes)
	loss := pfLossHigh
	if v := g.get("losshigh"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 100 {
			loss = n
		} else {
			p.note(&l.notes, fieldLine(g, "losshigh"), "gateway %s: losshigh %q: want 1-100, using %d", name, v, pfLossHigh)
		}
	}
	h.degLoss = float64(loss) / 100
	if h.degLoss < 0.05 { // under multihome's default recovery threshold
		h.recLoss = h.degLoss
	}
}

// group converts a gateway group: tiers become link priorities, the
// trigger level says whether degraded members are avoided.
func (p *pfsense) group(g *node) {
	name := g.get("name")
	pol := &policy{name: policyName(name, p.polNames), source: fmt.Sprintf("%s gateway group %s", p.pos(g.line), name)}
	var ms []member
	for _, it := range g.all("item") {
		f := strings.Split(it.text, "|")
		gwName := f[0]
		tier := 1
		if len(f) > 1 {
			if n, err := strconv.Atoi(f[1]); err == nil && n >= 1 {
				tier = n
			}
		}
		l, known := p.gw[gwName]
		switch {
		case !known:
			p.note(&pol.notes, it.line, "group %s: unknown gateway %q: not imported", name, gwName)
			continue
		case l == nil:
			continue // disabled, noted there
		}
		if len(f) > 2 && f[2] != "address" && f[2] != "" {
			p.note(&pol.notes, it.line, "group %s: gateway %s uses virtual IP %s for local services: multihome uses the link's address", name, gwName, f[2])
		}
		if slices.ContainsFunc(ms, func(m member) bool { return m.link == l }) {
			continue // the other family of the same link
		}
		w := max(l.weight, 1)
		ms = append(ms, member{link: l, tier: tier, weight: w, name: gwName})
		pol.links = append(pol.links, l.name)
	}
	if len(ms) == 0 {
		p.note(&p.d.droppedPolicies, g.line, "gateway group %s: no imported member: not imported", name)
		p.groups[name] = nil
		return
	}
	switch tr := g.get("trigger"); tr {
	case "down":
		pol.degraded = "use"
	case "downloss", "downlatency":
		p.note(&pol.notes, fieldLine(g, "trigger"), "group %s: trigger %s: multihome avoids a member over either threshold (loss or latency), not only %s",
			name, tr, strings.TrimPrefix(tr, "down"))
	case "downlosslatency", "":
	default:
		p.note(&pol.notes, fieldLine(g, "trigger"), "group %s: unknown trigger %q: avoiding degraded members", name, tr)
	}
	switch k := g.get("keep_failover_states"); k {
	case "kill":
		p.migrate[name] = true
	case "", "keep":
	default:
		p.note(&pol.notes, fieldLine(g, "keep_failover_states"), "group %s: keep_failover_states %q: not imported", name, k)
	}
	pol.lastResort = "main" // pf falls back to the default route
	p.groups[name] = pol
	p.d.policies = append(p.d.policies, pol)
	p.tiers = append(p.tiers, tiered{p: pol, members: ms, src: "group " + name, pos: p.pos(g.line), unit: "tier"})
}

// policyFor returns the policy of a rule's or the default's gateway: a
// group's, or a one-link failover policy for a single gateway.
func (p *pfsense) policyFor(gw string) (*policy, bool) {
	if pol, ok := p.groups[gw]; ok {
		return pol, pol != nil
	}
	l, ok := p.gw[gw]
	if !ok || l == nil {
		return nil, false
	}
	if pol := p.single[gw]; pol != nil {
		return pol, true
	}
	pol := &policy{name: policyName(gw, p.polNames), typ: "failover", links: []string{l.name}, lastResort: "main",
		source: fmt.Sprintf("%s gateway %s (a rule or the default uses it alone)", p.pos(p.gwLine[gw]), gw)}
	p.single[gw] = pol
	p.d.policies = append(p.d.policies, pol)
	return pol, true
}

func (p *pfsense) defaultGateway() {
	gws := p.root.child("gateways")
	dg := gws.child("defaultgw4")
	if dg == nil || dg.text == "" || dg.text == "-" {
		// OPNsense marks the default gateway in the item.
		for _, g := range p.root.path("OPNsense/Gateways").all("gateway_item") {
			if g.has("defaultgw") && g.get("ipprotocol") != "inet6" {
				dg = &node{text: g.get("name"), line: fieldLine(g, "defaultgw")}
			}
		}
	}
	if dg == nil || dg.text == "" || dg.text == "-" {
		line := 1
		if gws != nil {
			line = gws.line
		}
		p.note(&p.d.notes, line, "no IPv4 default gateway (defaultgw4): multihome spreads other flows by weight over all links (outbound.default_policy)")
		return
	}
	pol, ok := p.policyFor(dg.text)
	if !ok {
		p.note(&p.d.notes, dg.line, "default gateway %q is not imported: multihome spreads other flows by weight over all links", dg.text)
		return
	}
	p.d.defaultPolicy = pol.name
	if dg6 := gws.child("defaultgw6"); dg6 != nil && dg6.text != "" && dg6.text != "-" {
		p.note(&p.d.notes, dg6.line, "defaultgw6 %s: IPv6 leaves by source address unless outbound.nat6: true; then it uses default_policy %s too", dg6.text, pol.name)
	}
}
