package importer

import (
	"fmt"
	"net/netip"
	"strings"
)

// Rule fields that only record or describe; they need no note.
var pfQuiet = map[string]bool{"id": true, "tracker": true, "created": true, "updated": true, "descr": true, "type": true,
	"interface": true, "ipprotocol": true, "protocol": true, "source": true, "destination": true, "gateway": true,
	"disabled": true, "associated-rule-id": true, "floating": true, "quick": true, "direction": true}

// Rule fields that narrow what a rule matches: a rule with one of them
// set is written commented out, since without it the rule matches more.
var pfNarrowing = map[string]bool{"os": true, "dscp": true, "tagged": true, "nottagged": true, "icmptype": true, "sched": true,
	"tcpflags1": true, "tcpflags2": true, "tcpflags_any": true, "vlanprio": true, "statetype": true}

// filterRules converts the firewall rules that route by gateway (policy
// routing) into outbound rules, in order.
func (p *pfsense) filterRules() {
	skipped := 0
	for _, rn := range p.root.path("filter").all("rule") {
		gw := rn.get("gateway")
		if gw == "" {
			skipped++
			continue
		}
		descr := rn.get("descr")
		r := &rule{name: fmt.Sprintf("rule%d", len(p.d.rules)), source: fmt.Sprintf("%s filter rule %q", p.pos(rn.line), descr)}
		if t := rn.get("tracker"); t != "" {
			r.name = "pf" + t
		}
		if rn.has("disabled") {
			p.note(&r.notes, fieldLine(rn, "disabled"), "rule %q is disabled: not imported", descr)
			r.dropped = true
			p.d.rules = append(p.d.rules, r)
			continue
		}
		pol, ok := p.policyFor(gw)
		if !ok {
			p.note(&r.notes, fieldLine(rn, "gateway"), "rule %q: gateway %q is not imported: not imported", descr, gw)
			r.dropped = true
			p.d.rules = append(p.d.rules, r)
			continue
		}
		r.policy = pol.name
		r.commentOut = !p.filterRule(rn, r, descr)
		p.d.rules = append(p.d.rules, r)
	}
	if skipped > 0 {
		p.note(&p.d.notes, p.root.child("filter").line, "%d firewall rule(s) without a gateway: firewall policy, not multi-WAN routing; not imported", skipped)
	}
}

// filterRule fills r; false if a condition has no equivalent. One block
// per rule field (type, family, protocol, interface, source and
// destination, the rest), in docs/import.md's order.
func (p *pfsense) filterRule(rn *node, r *rule, descr string) bool {
	ok := true
	fail := func(line int, format string, a ...any) {
		p.note(&r.notes, line, "rule %q: "+format+": not imported (without it the rule would match more)", append([]any{descr}, a...)...)
		ok = false
	}
	if t := rn.get("type"); t != "" && t != "pass" {
		fail(fieldLine(rn, "type"), "type %s with a gateway", t)
	}
	v6 := false
	switch ipp := rn.get("ipprotocol"); ipp {
	case "inet", "":
	case "inet6", "inet46":
		v6 = ipp == "inet6"
		p.note(&r.notes, fieldLine(rn, "ipprotocol"), "rule %q: %s: multihome steers IPv6 flows only with outbound.nat6: true", descr, ipp)
	}
	switch proto := rn.get("protocol"); proto {
	case "", "any", "tcp/udp":
	case "tcp", "udp":
		r.proto = proto
	case "icmp":
		r.proto = "icmp"
		if v6 {
			r.proto = "icmpv6"
		}
	default:
		fail(fieldLine(rn, "protocol"), "protocol %s; multihome matches tcp, udp and icmp", proto)
	}
	if ifs := strings.Split(rn.get("interface"), ","); ifs[0] != "" {
		if len(ifs) > 1 {
			fail(fieldLine(rn, "interface"), "floating rule on %d interfaces; a rule has one iif", len(ifs))
		} else if in := p.ifaces.child(ifs[0]); in != nil && in.get("if") != "" {
			r.iif = in.get("if")
		} else {
			fail(fieldLine(rn, "interface"), "interface %q not in <interfaces>", ifs[0])
		}
	}
	for _, side := range []struct {
		field string
		pfx   *[]netip.Prefix
		port  *string
	}{{"source", &r.src, &r.sport}, {"destination", &r.dst, &r.dport}} {
		sn := rn.child(side.field)
		if sn == nil {
			continue
		}
		if sn.has("not") {
			fail(sn.line, "%s is negated (not); multihome rules match positively", side.field)
		}
		switch {
		case sn.child("address") != nil:
			a := sn.get("address")
			if pf, err := netip.ParsePrefix(a); err == nil {
				*side.pfx = append(*side.pfx, pf.Masked())
			} else if ad, err := netip.ParseAddr(a); err == nil {
				*side.pfx = append(*side.pfx, netip.PrefixFrom(ad, ad.BitLen()))
			} else {
				fail(fieldLine(sn, "address"), "%s alias %q; aliases are not imported", side.field, a)
			}
		case sn.child("network") != nil:
			if pf, ok2 := p.network(sn.get("network"), v6); ok2 {
				*side.pfx = append(*side.pfx, pf)
			} else {
				fail(fieldLine(sn, "network"), "%s network %q has no static address in <interfaces>", side.field, sn.get("network"))
			}
		}
		if port := sn.get("port"); port != "" {
			var chk portsCheck
			if r.proto != "" && r.proto != "tcp" && r.proto != "udp" {
				p.note(&r.notes, fieldLine(sn, "port"), "rule %q: %s port without tcp or udp: ignored by pf too", descr, side.field)
			} else if chk.UnmarshalText([]byte(port)) != nil {
				fail(fieldLine(sn, "port"), "%s port %q is an alias; aliases are not imported", side.field, port)
			} else {
				*side.port = port
			}
		}
	}
	for _, c := range rn.children {
		switch {
		case pfQuiet[c.name] || c.text == "" && len(c.children) == 0:
		case c.name == "statetype" && c.text == "keep state":
		case pfNarrowing[c.name]:
			fail(c.line, "%s %q", c.name, c.text)
		default:
			p.note(&r.notes, c.line, "rule %q: %s %q: no equivalent, not imported", descr, c.name, c.text)
		}
	}
	return ok
}

// network resolves pf's interface networks: "lan" is the LAN's subnet,
// "lanip" its address.
func (p *pfsense) network(name string, v6 bool) (netip.Prefix, bool) {
	ifname, isIP := strings.CutSuffix(name, "ip")
	in := p.ifaces.child(ifname)
	if in == nil {
		return netip.Prefix{}, false
	}
	addrField, bitsField := "ipaddr", "subnet"
	if v6 {
		addrField, bitsField = "ipaddrv6", "subnetv6"
	}
	a, err := netip.ParseAddr(in.get(addrField))
	if err != nil {
		return netip.Prefix{}, false
	}
	if isIP {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	pf, err := netip.ParsePrefix(a.String() + "/" + in.get(bitsField))
	if err != nil {
		return netip.Prefix{}, false
	}
	return pf.Masked(), true
}
