package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multihome/multihome/uci"
)

// rules converts mwan3's rules in order. A rule with a condition that has
// no equivalent is written commented out: imported without it, it would
// match more flows than it did. A last rule matching every destination
// becomes outbound.default_policy.
func (m *mwan3) rules() {
	all := m.f.Of("rule")
	shadow := "" // the catch-all rule that ends IPv4 matching, once seen
	for i, s := range all {
		r := &rule{source: fmt.Sprintf("%s rule %s", m.pos(s.Line), s.Name), name: s.Name}
		if s.Anonymous {
			r.name = "rule" + strconv.Itoa(i)
		}
		if !m.rule(s, r) {
			r.commentOut = r.policy != ""
			r.dropped = r.policy == ""
		}
		fam := get(s, "family", "any")
		for _, p := range append(slices.Clone(r.src), r.dst...) {
			fam = map[bool]string{true: "ipv4", false: "ipv6"}[p.Addr().Is4()]
		}
		if shadow != "" && fam != "ipv6" && !r.dropped && !r.commentOut {
			// mwan3 stops at the first match: after a catch-all, IPv4
			// flows never reach this rule; multihome's default policy
			// comes after every rule, so it would start matching.
			m.note(&r.notes, s.Line, "rule %s comes after the catch-all rule %s: mwan3 never matches IPv4 flows with it: not imported", s.Name, shadow)
			r.commentOut = true
		}
		catchAll := !r.commentOut && !r.dropped && r.proto == "" && r.sport == "" && r.dport == "" && r.iif == "" &&
			len(r.src) == 0 && (len(r.dst) == 0 || everything(r.dst))
		if catchAll && fam != "ipv6" && shadow == "" {
			shadow = s.Name
		}
		if catchAll && (m.d.defaultPolicy == "" || m.d.defaultPolicy == r.policy) {
			// mwan3's default_rule_v4/_v6.
			m.d.notes = append(m.d.notes, r.notes...)
			verb := "covered by"
			if m.d.defaultPolicy == "" {
				verb = "it is"
			}
			m.d.defaultPolicy = r.policy
			m.note(&m.d.notes, s.Line, "rule %s matches every destination: %s outbound.default_policy %s", s.Name, verb, r.policy)
			continue
		}
		m.d.rules = append(m.d.rules, r)
	}
	if m.d.defaultPolicy == "" && len(m.d.policies) > 0 {
		m.note(&m.d.notes, 1, "no rule matches every destination: mwan3 leaves other flows to the main table;\n"+
			"multihome gives them outbound.default_policy %s (the first policy)", m.d.policies[0].name)
	}
}

func everything(dst []netip.Prefix) bool {
	if len(dst) == 0 {
		return false
	}
	for _, p := range dst {
		if p.Bits() != 0 {
			return false
		}
	}
	return true
}

// rule fills r from s; false if r cannot be imported as it is. One block
// per mwan3 rule option, in docs/import.md's order; kept in one function
// so that every condition's "would match more" decision is in one place.
func (m *mwan3) rule(s *uci.Section, r *rule) bool {
	n := &r.notes
	ok := true
	fail := func(opt, format string, a ...any) {
		m.note(n, line(s, opt), "rule %s: "+format+": not imported (without it the rule would match more)", append([]any{s.Name}, a...)...)
		ok = false
	}
	fam := get(s, "family", "any")
	pol := get(s, "use_policy", "")
	switch p, known := m.policies[pol]; {
	case pol == "":
		m.note(n, s.Line, "rule %s: no use_policy: mwan3 ignores it, not imported", s.Name)
		return false
	case pol == "default" || pol == "unreachable" || pol == "blackhole":
		m.note(n, line(s, "use_policy"), "rule %s: use_policy %s (the main table, or a refusal, for these flows): no equivalent rule action, not imported", s.Name, pol)
		return false
	case !known:
		m.note(n, line(s, "use_policy"), "rule %s: unknown policy %q: not imported", s.Name, pol)
		return false
	case p == nil:
		m.note(n, line(s, "use_policy"), "rule %s: policy %s is not imported (no member on an imported interface): not imported", s.Name, pol)
		return false
	default:
		r.policy = p.name
	}
	if ip, has := s.Get("ipset"); has {
		fail("ipset", "matches ipset %s; multihome rules have no set match", ip)
	}
	if on(s, "logging") {
		m.note(n, line(s, "logging"), "rule %s: logging: multihome logs policy decisions, not each matched flow", s.Name)
	}
	switch proto := strings.ToLower(get(s, "proto", "all")); proto {
	case "all", "":
	case "tcp", "6":
		r.proto = "tcp"
	case "udp", "17":
		r.proto = "udp"
	case "icmp", "1":
		r.proto = "icmp"
	case "icmpv6", "ipv6-icmp", "58":
		r.proto = "icmpv6"
	default:
		fail("proto", "proto %s; multihome matches tcp, udp, icmp and icmpv6", proto)
	}
	for _, pp := range []struct {
		opt string
		to  *string
	}{{"src_port", &r.sport}, {"dest_port", &r.dport}} {
		v, has := s.Get(pp.opt)
		if !has {
			continue
		}
		if r.proto != "tcp" && r.proto != "udp" {
			m.note(n, line(s, pp.opt), "rule %s: %s without proto tcp or udp: ignored by mwan3 too", s.Name, pp.opt)
			continue
		}
		// iptables multiport: 80,443 and ranges 1024:65535.
		*pp.to = strings.ReplaceAll(strings.ReplaceAll(v, ":", "-"), " ", "")
		var chk portsCheck
		if err := chk.UnmarshalText([]byte(*pp.to)); err != nil {
			fail(pp.opt, "%s %q: %v", pp.opt, v, err)
		}
	}
	for _, ap := range []struct {
		opt string
		to  *[]netip.Prefix
	}{{"src_ip", &r.src}, {"dest_ip", &r.dst}} {
		v, has := s.Get(ap.opt)
		if !has {
			continue
		}
		for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				ad, err2 := netip.ParseAddr(a)
				if err2 != nil {
					fail(ap.opt, "%s %q is not an address or prefix (host names are resolved once by iptables)", ap.opt, a)
					continue
				}
				p = netip.PrefixFrom(ad, ad.BitLen())
			}
			if fam == "ipv4" && !p.Addr().Is4() || fam == "ipv6" && p.Addr().Is4() {
				m.note(n, line(s, ap.opt), "rule %s: %s %s is not %s: mwan3 skips the rule", s.Name, ap.opt, a, fam)
				return false
			}
			*ap.to = append(*ap.to, p.Masked())
		}
	}
	if dev, has := s.Get("src_iface"); has {
		r.iif = dev
		if m.net != nil {
			if ns := m.net.Section(dev); ns != nil {
				r.iif = get(ns, "device", get(ns, "ifname", dev))
			}
		}
		if strings.HasPrefix(r.iif, "@") || len(strings.Fields(r.iif)) != 1 || r.iif == dev && m.net == nil {
			m.note(n, line(s, "src_iface"), "rule %s: src_iface %s: the kernel interface is not known, check iif %q", s.Name, dev, r.iif)
		}
	}
	if fam == "ipv6" || slices.ContainsFunc(append(slices.Clone(r.src), r.dst...), func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		m.note(n, line(s, "family"), "rule %s: IPv6: multihome steers IPv6 flows only with outbound.nat6: true; without it IPv6 leaves by source address", s.Name)
	}
	if on(s, "sticky") && r.policy != "" {
		t := mwanStickyTime
		if v, has := s.Get("timeout"); has {
			sec, err := strconv.Atoi(v)
			if err != nil || sec < 1 {
				m.note(n, line(s, "timeout"), "rule %s: timeout %q is not a number of seconds: using 600", s.Name, v)
			} else {
				t = time.Duration(sec) * time.Second
			}
		}
		r.policy = m.stickyVariant(pol, t).name
	} else if _, has := s.Get("timeout"); has {
		m.note(n, line(s, "timeout"), "rule %s: timeout without sticky '1': unused by mwan3, not imported", s.Name)
	}
	return ok
}

// portsCheck validates ports the way config.Ports does, without importing
// config (the importer's output is checked by config.Parse as a whole).
type portsCheck struct{}

func (portsCheck) UnmarshalText(b []byte) error {
	for f := range strings.SplitSeq(string(b), ",") {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		z := a
		var err2 error
		if isRange {
			z, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || a == 0 || z < a {
			return fmt.Errorf("bad port or range %q", f)
		}
	}
	return nil
}

// stickyVariant returns the sticky policy made for rules that use the
// mwan3 policy pol with sticky '1' and this timeout.
func (m *mwan3) stickyVariant(pol string, t time.Duration) *policy {
	key := pol + "/" + t.String()
	if p := m.sticky[key]; p != nil {
		return p
	}
	base := m.policies[pol]
	p := &policy{name: policyName(base.name+"_sticky", m.polNames), typ: "sticky", links: base.links, sticky: t,
		lastResort: base.lastResort, source: base.source + " with sticky '1' (rule option)"}
	m.sticky[key] = p
	m.d.policies = append(m.d.policies, p)
	return p
}

// assignTiers orders mwan3's policies by importance (the default policy,
// then the rules' policies in order, then the rest) for assignTiers.
func (m *mwan3) assignTiers() {
	var order []string // mwan3 policy names by importance
	add := func(name string) {
		if _, ok := m.members[name]; ok && !slices.Contains(order, name) {
			order = append(order, name)
		}
	}
	for name, p := range m.policies {
		if p != nil && p.name == m.d.defaultPolicy {
			add(name)
		}
	}
	for _, r := range m.d.rules {
		for _, s := range m.f.Of("policy") {
			if p := m.policies[s.Name]; p != nil && (p.name == r.policy || m.isVariantOf(r.policy, s.Name)) {
				add(s.Name)
			}
		}
	}
	for _, s := range m.f.Of("policy") {
		add(s.Name)
	}
	var ts []tiered
	for _, name := range order {
		ts = append(ts, tiered{p: m.policies[name], members: m.members[name], src: "policy " + name, unit: "metric", pos: m.pos(m.f.Section(name).Line)})
	}
	assignTiers(m.d, ts)
	for _, s := range m.f.Of("policy") {
		base := m.policies[s.Name]
		for key, p := range m.sticky {
			if base != nil && strings.HasPrefix(key, s.Name+"/") && base.typ == "failover" {
				m.note(&p.notes, s.Line, "sticky rules of policy %s: multihome's sticky policies spread by weight over all members; mwan3 kept the metric tiers", s.Name)
			}
		}
	}
}

func (m *mwan3) isVariantOf(variant, mwanPolicy string) bool {
	for key, p := range m.sticky {
		if p.name == variant && strings.HasPrefix(key, mwanPolicy+"/") {
			return true
		}
	}
	return false
}
