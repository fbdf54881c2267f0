package config

import (
	"fmt"
	"math/bits"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Outbound configures the outbound datapath: how new connections from the
// LAN and from the gateway itself are spread over the links, and what
// happens to them when a link fails. Every field has a default, so a
// config without an outbound section spreads flows by weight over all
// links. See docs/outbound.md.
type Outbound struct {
	// Policies are named groups of links with a way to pick one of them
	// for each new flow. Default: one weighted policy "default" over all
	// links.
	Policies []OutboundPolicy `yaml:"policies"`
	// Rules are matched in order against each new flow; the first match
	// picks the policy. Flows matching no rule use DefaultPolicy.
	Rules []OutboundRule `yaml:"rules"`
	// DefaultPolicy names the policy of flows no rule matches (default:
	// the policy called "default", else the first policy).
	DefaultPolicy string `yaml:"default_policy"`
	// TableBase is the first routing table multihome owns; link i uses
	// table TableBase+i, the last-resort table is TableBase+255 (default
	// 31000, so tables 31000–31255).
	TableBase int `yaml:"table_base"`
	// RulePriority is the first ip rule priority multihome owns; it uses
	// RulePriority to RulePriority+599 (default 31000).
	RulePriority int `yaml:"rule_priority"`
	// MarkMask is the part of the packet and conntrack mark multihome
	// owns: contiguous bits; link i gets mark (i+1) shifted to the mask's
	// lowest bit; the all-ones value means "last resort: unreachable"
	// (default 0x00ff0000).
	MarkMask uint32 `yaml:"mark_mask"`
	// FlushOnFailure deletes the conntrack entries of a failed link's
	// flows (and only those) once the new ruleset is in place, so that
	// they re-establish over a healthy link (default true). Nothing is
	// flushed while no other link is healthy.
	FlushOnFailure *bool `yaml:"flush_on_failure"`
	// SNAT rewrites the source of IPv4 flows leaving a link to the link's
	// address (masquerade when the address is not known) (default true).
	SNAT *bool `yaml:"snat"`
	// NAT6 also steers IPv6 flows by policy and masquerades them (NPT-less
	// NAT66). Off by default: IPv6 leaves by source address (RFC 8678).
	NAT6 bool `yaml:"nat6"`
	// KeepOnExit leaves the ruleset, rules and routes in place when the
	// daemon stops, so flows keep working until it is restarted and
	// adopts them (default false: a clean stop removes everything).
	KeepOnExit bool `yaml:"keep_on_exit"`
	// Reconcile is how often the kernel state is compared with the
	// desired state and repaired (default 5s).
	Reconcile Duration `yaml:"reconcile"`
}

// PolicyType names how a policy picks a link for a new flow.
type PolicyType string

// Policy types.
const (
	// PolicyFailover uses the healthy links of the best priority tier
	// (lowest link priority), spread by weight within the tier.
	PolicyFailover PolicyType = "failover"
	// PolicyWeighted spreads new flows over all healthy links by weight.
	PolicyWeighted PolicyType = "weighted"
	// PolicySticky is weighted, but a source address keeps the link it
	// was given for StickyTimeout after its last new flow.
	PolicySticky PolicyType = "sticky"
	// PolicyLeastLoaded spreads by weight × spare capacity, and gives no
	// new flows to a saturated link while another has room.
	PolicyLeastLoaded PolicyType = "least-loaded"
	// PolicyBond carries TCP over every link at once through the bond
	// proxy and aggregator (config/bond.go, docs/mptcp.md); other
	// protocols, and TCP while the aggregator is unreachable, use
	// Fallback.
	PolicyBond PolicyType = "bond"
)

// LastResort says where new flows go when no link of a policy is healthy.
type LastResort string

// Last resorts.
const (
	// LastResortMain leaves the flow to the main routing table (default).
	LastResortMain LastResort = "main"
	// LastResortUnreachable refuses it (ICMP unreachable to the sender).
	LastResortUnreachable LastResort = "unreachable"
)

// OutboundPolicy is a named group of links and a way to pick among them.
type OutboundPolicy struct {
	Name string     `yaml:"name"`
	Type PolicyType `yaml:"type"` // default weighted
	// Links are the members, by name (default: all links).
	Links []string `yaml:"links"`
	// StickyTimeout is how long a source keeps its link after its last
	// new flow (sticky only; default 10m).
	StickyTimeout Duration `yaml:"sticky_timeout"`
	// StickySize is how many sources each of a sticky policy's sets
	// (one per member and address family) holds (sticky only; default
	// DefaultStickySize). A full set records no new source: their flows
	// are still spread by weight, without stickiness.
	StickySize int `yaml:"sticky_size"`
	// Spillover is a utilisation (0–100%) above which a member takes no
	// new flows while another member is below it. least-loaded also
	// spills over saturated members without it.
	Spillover Percent `yaml:"spillover"`
	// LastResort applies when no member accepts new flows: main or
	// unreachable (default main).
	LastResort LastResort `yaml:"last_resort"`
	// Degraded says what new flows do with degraded members: avoid them
	// while a member is fully up (default), or use them like the others.
	Degraded string `yaml:"degraded"`
	// Fallback is the policy a bond policy's flows use when they cannot
	// be bonded (bond only; default: the default policy).
	Fallback string `yaml:"fallback"`
}

// OutboundRule matches new flows and names their policy. Every condition
// given must hold; lists match any of their elements.
type OutboundRule struct {
	// Name is for logs and the ruleset's comments (default "rule<N>").
	Name string `yaml:"name"`
	// Src and Dst match the source and destination address.
	// Write a single address as a /32 or /128.
	Src []netip.Prefix `yaml:"src"`
	Dst []netip.Prefix `yaml:"dst"`
	// Proto is tcp, udp, icmp or icmpv6 (default any).
	Proto string `yaml:"proto"`
	// DPort and SPort match ports: "443", "80,443", "8000-8080" (tcp and
	// udp; without proto they match both).
	DPort Ports `yaml:"dport"`
	SPort Ports `yaml:"sport"`
	// IIF matches the interface the flow came in on (forwarded flows).
	IIF string `yaml:"iif"`
	// DSCP matches the DSCP value 0–63.
	DSCP *int `yaml:"dscp"`
	// Policy is the policy's name (required).
	Policy string `yaml:"policy"`
	// MigrateOnRecovery moves this rule's existing flows off links the
	// policy no longer picks once a better link has recovered (their
	// conntrack entries are deleted; TCP connections are reset). Default
	// false: existing flows stay where they are.
	MigrateOnRecovery bool `yaml:"migrate_on_recovery"`
}

// PortRange is an inclusive port range.
type PortRange struct{ From, To uint16 }

// Ports is a list of port ranges written "443", "80,443" or "8000-8080".
type Ports []PortRange

// UnmarshalText parses a comma-separated list of ports and ranges.
func (p *Ports) UnmarshalText(b []byte) error {
	var out Ports
	for f := range strings.SplitSeq(string(b), ",") {
		f = strings.TrimSpace(f)
		lo, hi, isRange := strings.Cut(f, "-")
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		bv := a
		var err2 error
		if isRange {
			bv, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		}
		if err1 != nil || err2 != nil || a == 0 || bv < a {
			return fmt.Errorf("bad port or range %q: want e.g. 443, 80,443 or 8000-8080", f)
		}
		out = append(out, PortRange{uint16(a), uint16(bv)})
	}
	*p = out
	return nil
}

// String writes the ports in nft syntax: 443 or { 80, 8000-8080 }.
func (p Ports) String() string {
	s := make([]string, len(p))
	for i, r := range p {
		if r.From == r.To {
			s[i] = strconv.Itoa(int(r.From))
		} else {
			s[i] = fmt.Sprintf("%d-%d", r.From, r.To)
		}
	}
	if len(s) == 1 {
		return s[0]
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// Outbound defaults.
const (
	DefaultTableBase     = 31000
	DefaultRulePriority  = 31000
	DefaultMarkMask      = 0x00ff0000
	DefaultStickyTimeout = Duration(10 * time.Minute)
	// DefaultStickySize is the default sticky_size: a /16 of sources per
	// member and family (what nft gave dynamic sets without a size).
	DefaultStickySize = 65536
	// MaxStickySize bounds sticky_size: the kernel keeps every element
	// in memory.
	MaxStickySize    = 1 << 24
	DefaultReconcile = Duration(5 * time.Second)
	// RulePriorityRange is how many ip rule priorities multihome uses.
	RulePriorityRange = 600
	// TableRange is how many routing tables multihome uses.
	TableRange = 256
)

// EffectiveOutbound returns the outbound section with every default
// filled in. It does not validate and does not change c; configs built in
// Go (tests) get the same defaults as parsed ones.
func (c *Config) EffectiveOutbound() Outbound {
	o := c.Outbound
	o.Policies = slices.Clone(o.Policies)
	o.Rules = slices.Clone(o.Rules)
	if len(o.Policies) == 0 {
		o.Policies = []OutboundPolicy{{Name: "default", Type: PolicyWeighted}}
	}
	for i := range o.Policies {
		p := &o.Policies[i]
		if p.Type == "" {
			p.Type = PolicyWeighted
		}
		if len(p.Links) == 0 {
			for _, l := range c.Links {
				if !slices.Contains(p.Links, l.Name) {
					p.Links = append(p.Links, l.Name)
				}
			}
		}
		if p.Type == PolicySticky && p.StickyTimeout == 0 {
			p.StickyTimeout = DefaultStickyTimeout
		}
		if p.Type == PolicySticky && p.StickySize == 0 {
			p.StickySize = DefaultStickySize
		}
		if p.LastResort == "" {
			p.LastResort = LastResortMain
		}
		if p.Degraded == "" {
			p.Degraded = "avoid"
		}
	}
	for i := range o.Rules {
		if o.Rules[i].Name == "" {
			o.Rules[i].Name = "rule" + strconv.Itoa(i)
		}
	}
	if o.DefaultPolicy == "" {
		o.DefaultPolicy = o.Policies[0].Name
		for _, p := range o.Policies {
			if p.Name == "default" {
				o.DefaultPolicy = p.Name
			}
		}
	}
	if o.TableBase == 0 {
		o.TableBase = DefaultTableBase
	}
	if o.RulePriority == 0 {
		o.RulePriority = DefaultRulePriority
	}
	if o.MarkMask == 0 {
		o.MarkMask = DefaultMarkMask
	}
	if o.FlushOnFailure == nil {
		t := true
		o.FlushOnFailure = &t
	}
	if o.SNAT == nil {
		t := true
		o.SNAT = &t
	}
	if o.Reconcile == 0 {
		o.Reconcile = DefaultReconcile
	}
	return o
}

// MarkSlots is how many distinct non-zero values fit in mask: links use
// 1..slots-1 and the all-ones value is the last-resort mark.
func MarkSlots(mask uint32) int {
	if mask == 0 {
		return 0
	}
	return int(mask >> bits.TrailingZeros32(mask)) // all ones in the field
}

var policyName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,23}$`)

func init() { sectionChecks = append(sectionChecks, checkOutbound) }

// checkOutbound fills in the outbound section's defaults and validates
// its policies, rules and kernel ranges.
func checkOutbound(c *Config, k *checker) {
	c.Outbound = c.EffectiveOutbound()
	o := &c.Outbound
	names := map[string]int{}
	for i := range o.Policies {
		checkPolicy(c, k, i, names)
	}
	if _, ok := names[o.DefaultPolicy]; !ok {
		k.errorf("outbound.default_policy", "unknown policy %q", o.DefaultPolicy)
	}
	for i := range o.Rules {
		checkRule(k, &o.Rules[i], i, names)
	}
	checkOutboundRanges(c, k)
}

// checkPolicy validates outbound.policies[i] and records its name in names
// (name → index), reporting duplicates.
func checkPolicy(c *Config, k *checker, i int, names map[string]int) {
	o := &c.Outbound
	p := &o.Policies[i]
	path := fmt.Sprintf("outbound.policies[%d]", i)
	switch {
	case p.Name == "":
		k.errorf(path+".name", "missing: every policy needs a name")
	case !policyName.MatchString(p.Name):
		k.errorf(path+".name", "bad name %q: a letter, then letters, digits, '-' or '_', at most 24", p.Name)
	default:
		if j, dup := names[p.Name]; dup {
			k.errorf(path+".name", "duplicate policy name %q (also outbound.policies[%d])", p.Name, j)
		}
		names[p.Name] = i
	}
	switch p.Type {
	case PolicyFailover, PolicyWeighted, PolicySticky, PolicyLeastLoaded, PolicyBond:
	default:
		k.errorf(path+".type", "unknown policy type %q: want failover, weighted, sticky, least-loaded or bond", p.Type)
	}
	seen := map[string]bool{}
	for j, l := range p.Links {
		lp := fmt.Sprintf("%s.links[%d]", path, j)
		if c.LinkByName(l) == nil {
			k.errorf(lp, "unknown link %q", l)
		} else if seen[l] {
			k.errorf(lp, "link %q listed twice", l)
		}
		seen[l] = true
	}
	if p.StickyTimeout != 0 && p.Type != PolicySticky {
		k.errorf(path+".sticky_timeout", "only for type sticky")
	}
	if p.StickyTimeout < 0 || (p.Type == PolicySticky && p.StickyTimeout.D() < time.Second) {
		k.errorf(path+".sticky_timeout", "%s is too short: at least 1s", p.StickyTimeout.D())
	}
	if p.StickySize != 0 && p.Type != PolicySticky {
		k.errorf(path+".sticky_size", "only for type sticky")
	} else if p.StickySize < 0 || p.StickySize > MaxStickySize {
		k.errorf(path+".sticky_size", "%d out of range: 1 to %d sources per set", p.StickySize, MaxStickySize)
	}
	if p.Spillover < 0 || p.Spillover > 1 {
		k.errorf(path+".spillover", "must be between 0%% and 100%%")
	}
	switch p.LastResort {
	case LastResortMain, LastResortUnreachable:
	default:
		k.errorf(path+".last_resort", "unknown last resort %q: want main or unreachable", p.LastResort)
	}
	if p.Degraded != "avoid" && p.Degraded != "use" {
		k.errorf(path+".degraded", "unknown choice %q: want avoid or use", p.Degraded)
	}
}

// checkRule validates outbound.rules[i] against the policy names.
func checkRule(k *checker, r *OutboundRule, i int, names map[string]int) {
	path := fmt.Sprintf("outbound.rules[%d]", i)
	if r.Policy == "" {
		k.errorf(path+".policy", "missing: the policy of the flows this rule matches")
	} else if _, ok := names[r.Policy]; !ok {
		k.errorf(path+".policy", "unknown policy %q", r.Policy)
	}
	switch r.Proto {
	case "", "tcp", "udp", "icmp", "icmpv6":
	default:
		k.errorf(path+".proto", "unknown protocol %q: want tcp, udp, icmp or icmpv6", r.Proto)
	}
	if (len(r.DPort) > 0 || len(r.SPort) > 0) && r.Proto != "" && r.Proto != "tcp" && r.Proto != "udp" {
		k.errorf(path+".proto", "ports need proto tcp or udp (or none for both), got %q", r.Proto)
	}
	if r.DSCP != nil && (*r.DSCP < 0 || *r.DSCP > 63) {
		k.errorf(path+".dscp", "%d is not a DSCP value (0–63)", *r.DSCP)
	}
	if r.IIF != "" && (len(r.IIF) > 15 || strings.ContainsAny(r.IIF, "/ \t\"")) {
		k.errorf(path+".iif", "bad interface name %q", r.IIF)
	}
	fam := 0
	for j, p := range append(slices.Clone(r.Src), r.Dst...) {
		f := 4
		if p.Addr().Is6() {
			f = 6
		}
		if fam != 0 && f != fam {
			field := "src"
			if j >= len(r.Src) {
				field = "dst"
			}
			k.errorf(path+"."+field, "mixes IPv4 and IPv6 prefixes: write one rule per family")
			break
		}
		fam = f
	}
	if r.Proto == "icmpv6" && fam == 4 || r.Proto == "icmp" && fam == 6 {
		k.errorf(path+".proto", "%s does not match %s prefixes", r.Proto, map[int]string{4: "IPv4", 6: "IPv6"}[fam])
	}
}

// checkOutboundRanges validates the mark mask, routing tables, rule
// priorities and reconcile period.
func checkOutboundRanges(c *Config, k *checker) {
	o := &c.Outbound
	if slots := MarkSlots(o.MarkMask); o.MarkMask>>bits.TrailingZeros32(o.MarkMask)&(o.MarkMask>>bits.TrailingZeros32(o.MarkMask)+1) != 0 {
		k.errorf("outbound.mark_mask", "%#x is not one run of contiguous bits", o.MarkMask)
	} else if slots-1 < len(c.Links) {
		k.errorf("outbound.mark_mask", "%#x has room for %d links, the config has %d", o.MarkMask, slots-1, len(c.Links))
	}
	if o.TableBase < 1 || (o.TableBase <= 255 && o.TableBase+TableRange > 253) || o.TableBase+TableRange > 1<<31-1 {
		k.errorf("outbound.table_base", "%d: tables %d–%d must not include 253–255 (default, main, local)", o.TableBase, o.TableBase, o.TableBase+TableRange-1)
	}
	if len(c.Links) > TableRange-1 {
		k.errorf("links", "at most %d links", TableRange-1)
	}
	if o.RulePriority < 1 || o.RulePriority+RulePriorityRange > 32766 {
		k.errorf("outbound.rule_priority", "%d: priorities %d–%d must be within 1–32765 (before the main table's rule)", o.RulePriority, o.RulePriority, o.RulePriority+RulePriorityRange-1)
	}
	if o.Reconcile.D() < 100*time.Millisecond {
		k.errorf("outbound.reconcile", "%s is too short: at least 100ms", o.Reconcile.D())
	}
}
