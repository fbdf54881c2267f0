package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// IPv6 configures IPv6 multihoming on the LAN (package ra, docs/ipv6.md):
// every provider's prefix is advertised on the LAN, packets are routed by
// source prefix (RFC 8678), and a failed provider's prefix is deprecated
// (RFC 8475).
type IPv6 struct {
	// LAN is the interface router advertisements are sent on, e.g. "lan0".
	LAN string `yaml:"lan"`
	// Mode is sadr (source-address-dependent routing, default: hosts get
	// an address in every provider prefix) or nptv6 (hosts get one address
	// in Internal, translated to the prefix of the link in use, RFC 6296).
	Mode string `yaml:"mode"`
	// Prefixes are the provider-assigned LAN prefixes, one or more per link.
	Prefixes []IPv6Prefix `yaml:"prefixes"`
	// RA sets the router advertisements' timing and lifetimes.
	RA IPv6RA `yaml:"ra"`
	// RDNSS are the recursive DNS servers advertised (RFC 8106).
	RDNSS []netip.Addr `yaml:"rdnss"`
	// RulePriority is the first of the ip -6 rule priorities used for
	// source routing (default: outbound.rule_priority − 100, i.e. 30900).
	// Two are used; they must lie outside outbound's range.
	RulePriority int `yaml:"rule_priority"`
	// Internal is the site's one internal /64 in nptv6 mode: the prefix
	// advertised on the LAN, mapped to each link's prefix on the way out.
	Internal netip.Prefix `yaml:"internal"`
	// FirewallSets are the operator's own nftables sets that multihome
	// keeps filled with the LAN prefixes of some links (docs/ipv6.md,
	// "Firewall sets").
	FirewallSets []IPv6FirewallSet `yaml:"firewall_sets"`
	// StateDir keeps what must survive a restart: the DHCPv6-PD leases
	// held, one file per link (default /var/lib/multihome).
	StateDir string `yaml:"state_dir"`
}

// DefaultStateDir is ipv6.state_dir's default.
const DefaultStateDir = "/var/lib/multihome"

// IPv6FirewallSet is an nftables set of the operator's, in the operator's
// table, whose elements multihome replaces with the known LAN prefixes of
// Links (and retired ones until ipv6.ra.retire ends). The set must exist,
// of type ipv6_addr with flags interval; multihome never creates or
// deletes it, nor its table, and leaves its elements on shutdown.
type IPv6FirewallSet struct {
	// Family of the table: inet (default) or ip6.
	Family string `yaml:"family"`
	// Table is the operator's table, e.g. filter.
	Table string `yaml:"table"`
	// Set is the set's name, e.g. lan6.
	Set string `yaml:"set"`
	// Links whose prefixes the set holds (default: every link with an
	// ipv6.prefixes entry).
	Links []string `yaml:"links"`
}

// String returns the set as nft names it: "inet filter lan6".
func (s IPv6FirewallSet) String() string { return s.Family + " " + s.Table + " " + s.Set }

// nftIdent is what multihome accepts as an nftables table or set name:
// an nft identifier (letter or underscore first), at most 255 bytes.
var nftIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,254}$`)

// IPv6Prefix is one provider-assigned LAN prefix: configured (Prefix) or
// learned from the link by DHCPv6 prefix delegation (DHCPv6PD).
type IPv6Prefix struct {
	// Link is the link whose provider assigned the prefix.
	Link string `yaml:"link"`
	// Prefix is the prefix, normally a /64, e.g. 2001:db8:1:100::/64.
	// For a DHCPv6PD entry it is the zero value until a prefix is
	// learned: every consumer skips entries whose Prefix is not valid.
	Prefix netip.Prefix `yaml:"prefix"`
	// DHCPv6PD, instead of Prefix, learns the prefix from the link by
	// DHCPv6 prefix delegation (package pd).
	DHCPv6PD *IPv6PD `yaml:"dhcpv6_pd"`
	// Learned is set, with Prefix, by the daemon while a delegation is
	// held: the advertised lifetimes must not exceed its lifetimes.
	Learned *LearnedPrefix `yaml:"-"`
}

// IPv6PD asks for a prefix delegated by the link's provider (RFC 8415
// IA_PD) and uses one /64 of it on the LAN.
type IPv6PD struct {
	// Length is the prefix length asked for (a hint: the server decides),
	// default 56. Every entry of one link asks for the same length: a
	// link holds one delegation.
	Length int `yaml:"length"`
	// Subnet is the number of the /64 used on the LAN within the
	// delegated prefix (default 0): LAN prefix = delegated + subnet << 64−length.
	Subnet int `yaml:"subnet"`
	// RapidCommit asks for the two-message exchange (Solicit with Rapid
	// Commit, Reply; RFC 8415 18.2.1), default off. Every entry of one
	// link says the same.
	RapidCommit bool `yaml:"rapid_commit"`
}

// LearnedPrefix is the delegation a learned LAN prefix comes from.
type LearnedPrefix struct {
	// Delegated is the prefix the server delegated, e.g. a /56.
	Delegated netip.Prefix
	// Preferred and Valid are when the delegation's preferred and valid
	// lifetimes end (unless renewed).
	Preferred, Valid time.Time
}

// DefaultPDLength is the prefix length asked for by default.
const DefaultPDLength = 56

// PDSubnet returns /64 number subnet of the delegated prefix.
func PDSubnet(delegated netip.Prefix, subnet int) (netip.Prefix, error) {
	if !delegated.IsValid() || !delegated.Addr().Is6() || delegated.Bits() > 64 {
		return netip.Prefix{}, fmt.Errorf("delegated prefix %s: want an IPv6 prefix of length 64 or less", delegated)
	}
	if subnet < 0 || (64-delegated.Bits() < 62 && subnet >= 1<<(64-delegated.Bits())) {
		return netip.Prefix{}, fmt.Errorf("subnet %d does not fit in delegated prefix %s (%d /64s)", subnet, delegated, uint64(1)<<(64-delegated.Bits()))
	}
	b := delegated.Masked().Addr().As16()
	n := new(big.Int).SetBytes(b[:])
	n.Or(n, new(big.Int).Lsh(big.NewInt(int64(subnet)), 64))
	var out [16]byte
	n.FillBytes(out[:])
	return netip.PrefixFrom(netip.AddrFrom16(out), 64), nil
}

// IPv6RA are the router advertisement settings.
type IPv6RA struct {
	// Interval between unsolicited advertisements (default 10s, at least
	// 100ms). A link's change of state sends one at once.
	Interval Duration `yaml:"interval"`
	// RouterLifetime advertised (default 30m; 0s is not allowed: hosts
	// would not use the gateway as a default router).
	RouterLifetime Duration `yaml:"router_lifetime"`
	// ValidLifetime and PreferredLifetime of each prefix (defaults 1d and
	// 4h). A down link's prefix is advertised with preferred lifetime 0.
	ValidLifetime     Duration `yaml:"valid_lifetime"`
	PreferredLifetime Duration `yaml:"preferred_lifetime"`
	// RDNSSLifetime of the advertised DNS servers (default 3 × interval,
	// at least 30s).
	RDNSSLifetime Duration `yaml:"rdnss_lifetime"`
	// Retire is how long a prefix removed from the config keeps being
	// advertised with zero lifetimes so that hosts deprecate it (default
	// 3 × interval, at least 3s).
	Retire Duration `yaml:"retire"`
}

// IPv6 modes.
const (
	IPv6ModeSADR  = "sadr"
	IPv6ModeNPTv6 = "nptv6"
)

// DefaultIPv6RulePriorityOffset is how far below outbound.rule_priority the
// IPv6 source rules sit by default.
const DefaultIPv6RulePriorityOffset = 100

func init() { sectionChecks = append(sectionChecks, checkIPv6) }

// checkIPv6 fills in the ipv6 section's defaults and validates it.
func checkIPv6(c *Config, k *checker) {
	v := c.IPv6
	if v == nil {
		return
	}
	checkIPv6Mode(c, k)
	if len(v.Prefixes) == 0 {
		k.errorf("ipv6.prefixes", "missing: each link's LAN prefix, e.g. [{link: isp1, prefix: 2001:db8:1:100::/64}]")
	}
	for i := range v.Prefixes {
		checkIPv6Prefix(c, k, i)
	}
	checkFirewallSets(c, k)
	for i, a := range v.RDNSS {
		if !a.Is6() || a.Is4In6() {
			k.errorf(fmt.Sprintf("ipv6.rdnss[%d]", i), "%s is not an IPv6 address", a)
		}
	}
	checkRA(k, &v.RA)
	checkIPv6RulePriority(c, k)
	if v.StateDir == "" {
		v.StateDir = DefaultStateDir
	} else if !filepath.IsAbs(v.StateDir) {
		k.errorf("ipv6.state_dir", "%q must be an absolute path", v.StateDir)
	}
}

// checkIPv6Mode validates outbound.nat6 against the section, ipv6.lan,
// ipv6.mode and ipv6.internal.
func checkIPv6Mode(c *Config, k *checker) {
	v := c.IPv6
	if c.Outbound.NAT6 {
		k.errorf("ipv6.mode", "outbound.nat6 would masquerade the LAN prefixes: turn it off with an ipv6 section (sadr routes by source, nptv6 translates prefixes)")
	}
	if v.LAN == "" {
		k.errorf("ipv6.lan", "missing: the LAN interface to advertise on, e.g. lan0")
	}
	oneOf(k, "ipv6.mode", &v.Mode, IPv6ModeSADR, IPv6ModeSADR, IPv6ModeNPTv6)
	switch {
	case v.Internal.IsValid() && v.Mode != IPv6ModeNPTv6:
		k.errorf("ipv6.internal", "applies to mode nptv6 only")
	case v.Mode != IPv6ModeNPTv6:
	case !v.Internal.IsValid():
		k.errorf("ipv6.internal", "missing: mode nptv6 needs the internal LAN prefix, e.g. 2001:db8:100::/64")
	case !v.Internal.Addr().Is6() || v.Internal.Addr().Is4In6() || v.Internal.Bits() != 64:
		k.errorf("ipv6.internal", "%s: want an IPv6 /64", v.Internal)
	case v.Internal.Masked() != v.Internal:
		k.errorf("ipv6.internal", "%s has host bits set: want %s", v.Internal, v.Internal.Masked())
	}
}

// checkIPv6Prefix validates ipv6.prefixes[i] against the links and the
// entries before it.
func checkIPv6Prefix(c *Config, k *checker, i int) {
	v := c.IPv6
	p := &v.Prefixes[i]
	path := fmt.Sprintf("ipv6.prefixes[%d]", i)
	if p.Link == "" {
		k.errorf(path+".link", "missing: the link whose provider assigned the prefix")
	} else if l := c.LinkByName(p.Link); l == nil {
		k.errorf(path+".link", "unknown link %q", p.Link)
	} else if !l.Gateway6.IsValid() && p.DHCPv6PD == nil {
		// (a dhcpv6_pd link without one learns it from the WAN's RAs)
		k.errorf(path+".link", "link %s has no gateway6: its prefix could not be routed", p.Link)
	}
	if p.DHCPv6PD != nil {
		checkIPv6PD(v, k, i, path)
		if !p.Prefix.IsValid() {
			return // not learned yet: nothing more to check
		}
	}
	switch {
	case !p.Prefix.IsValid():
		k.errorf(path+".prefix", "missing: an IPv6 prefix such as 2001:db8:1:100::/64, or dhcpv6_pd to learn one")
		return
	case !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6():
		k.errorf(path+".prefix", "%s is not an IPv6 prefix", p.Prefix)
		return
	case p.Prefix.Bits() != 64:
		k.errorf(path+".prefix", "%s: SLAAC needs a /64", p.Prefix)
		return
	case p.Prefix.Masked() != p.Prefix:
		k.errorf(path+".prefix", "%s has host bits set: want %s", p.Prefix, p.Prefix.Masked())
		return
	}
	if v.Mode == IPv6ModeNPTv6 && v.Internal.IsValid() && v.Internal.Overlaps(p.Prefix) {
		k.errorf(path+".prefix", "%s overlaps ipv6.internal %s", p.Prefix, v.Internal)
	}
	for j := range i {
		if v.Prefixes[j].Prefix.IsValid() && v.Prefixes[j].Prefix.Overlaps(p.Prefix) {
			k.errorf(path+".prefix", "%s overlaps ipv6.prefixes[%d] %s", p.Prefix, j, v.Prefixes[j].Prefix)
		}
	}
}

// checkIPv6PD fills in and validates ipv6.prefixes[i].dhcpv6_pd: one
// delegation length per link, distinct subnets.
func checkIPv6PD(v *IPv6, k *checker, i int, path string) {
	p := &v.Prefixes[i]
	d := p.DHCPv6PD
	if p.Prefix.IsValid() && p.Learned == nil {
		k.errorf(path+".dhcpv6_pd", "prefix and dhcpv6_pd are exclusive: a prefix is either configured or learned")
	}
	if d.Length == 0 {
		d.Length = DefaultPDLength
	}
	switch {
	case d.Length < 1 || d.Length > 64:
		k.errorf(path+".dhcpv6_pd.length", "%d: want 1..64 (the delegated prefix holds the LAN /64s)", d.Length)
	case d.Subnet < 0 || (d.Length > 2 && d.Subnet >= 1<<(64-d.Length)):
		k.errorf(path+".dhcpv6_pd.subnet", "%d does not fit in a /%d: want 0..%d", d.Subnet, d.Length, uint64(1)<<(64-d.Length)-1)
	}
	for j := range i {
		if q := v.Prefixes[j]; q.Link == p.Link && q.DHCPv6PD != nil && q.DHCPv6PD.Length != d.Length {
			k.errorf(path+".dhcpv6_pd.length", "%d differs from ipv6.prefixes[%d] (/%d): a link holds one delegation", d.Length, j, q.DHCPv6PD.Length)
		} else if q.Link == p.Link && q.DHCPv6PD != nil && q.DHCPv6PD.Subnet == d.Subnet {
			k.errorf(path+".dhcpv6_pd.subnet", "%d is already used by ipv6.prefixes[%d]", d.Subnet, j)
		} else if q.Link == p.Link && q.DHCPv6PD != nil && q.DHCPv6PD.RapidCommit != d.RapidCommit {
			k.errorf(path+".dhcpv6_pd.rapid_commit", "%v differs from ipv6.prefixes[%d]: a link holds one delegation", d.RapidCommit, j)
		}
	}
}

// checkRA fills in ipv6.ra's defaults and validates its timers.
func checkRA(k *checker, r *IPv6RA) {
	defDur(&r.Interval, 10*time.Second)
	if r.Interval.D() < 100*time.Millisecond {
		k.errorf("ipv6.ra.interval", "%s is below 100ms", r.Interval.D())
	}
	defDur(&r.RouterLifetime, 30*time.Minute)
	defDur(&r.ValidLifetime, 24*time.Hour)
	defDur(&r.PreferredLifetime, 4*time.Hour)
	defDur(&r.RDNSSLifetime, max(3*r.Interval.D(), 30*time.Second))
	defDur(&r.Retire, max(3*r.Interval.D(), 3*time.Second))
	if r.RouterLifetime.D() > 9000*time.Second {
		k.errorf("ipv6.ra.router_lifetime", "%s is above 9000s (RFC 4861)", r.RouterLifetime.D())
	}
	if r.PreferredLifetime.D() > r.ValidLifetime.D() {
		k.errorf("ipv6.ra.preferred_lifetime", "%s is above valid_lifetime %s", r.PreferredLifetime.D(), r.ValidLifetime.D())
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"valid_lifetime", r.ValidLifetime}, {"preferred_lifetime", r.PreferredLifetime}, {"rdnss_lifetime", r.RDNSSLifetime}} {
		if f.d.D() > time.Duration(1<<32-2)*time.Second {
			k.errorf("ipv6.ra."+f.name, "%s is too long", f.d.D())
		}
	}
}

// checkIPv6RulePriority fills in ipv6.rule_priority and keeps it clear of
// outbound's rule priorities.
func checkIPv6RulePriority(c *Config, k *checker) {
	v := c.IPv6
	if v.RulePriority == 0 {
		v.RulePriority = c.EffectiveOutbound().RulePriority - DefaultIPv6RulePriorityOffset
	}
	o := c.EffectiveOutbound()
	if v.RulePriority < 1 || v.RulePriority+1 >= 32766 {
		k.errorf("ipv6.rule_priority", "%d: must be 1..32764", v.RulePriority)
	} else if v.RulePriority+1 >= o.RulePriority && v.RulePriority < o.RulePriority+RulePriorityRange {
		k.errorf("ipv6.rule_priority", "%d: overlaps outbound's rule priorities %d–%d", v.RulePriority, o.RulePriority, o.RulePriority+RulePriorityRange-1)
	}
}

// checkFirewallSets validates ipv6.firewall_sets and fills in their
// defaults (family inet, every link with a prefixes entry).
func checkFirewallSets(c *Config, k *checker) {
	v := c.IPv6
	var withPrefixes []string
	for _, p := range v.Prefixes {
		if p.Link != "" && !slices.Contains(withPrefixes, p.Link) {
			withPrefixes = append(withPrefixes, p.Link)
		}
	}
	for i := range v.FirewallSets {
		s := &v.FirewallSets[i]
		path := fmt.Sprintf("ipv6.firewall_sets[%d]", i)
		oneOf(k, path+".family", &s.Family, "inet", "inet", "ip6")
		for _, f := range []struct{ name, val, eg string }{{"table", s.Table, "filter"}, {"set", s.Set, "lan6"}} {
			switch {
			case f.val == "":
				k.errorf(path+"."+f.name, "missing: the name of the operator's nftables %s, e.g. %s", f.name, f.eg)
			case !nftIdent.MatchString(f.val):
				k.errorf(path+"."+f.name, "%q is not an nftables name: want a letter or _ then letters, digits, _ . or -", f.val)
			}
		}
		if len(s.Links) == 0 {
			s.Links = slices.Clone(withPrefixes)
		}
		for j, l := range s.Links {
			lp := fmt.Sprintf("%s.links[%d]", path, j)
			switch {
			case c.LinkByName(l) == nil:
				k.errorf(lp, "unknown link %q", l)
			case !slices.Contains(withPrefixes, l):
				k.errorf(lp, "link %s has no ipv6.prefixes entry: the set would hold none of its prefixes", l)
			case slices.Index(s.Links, l) < j:
				k.errorf(lp, "link %s is listed twice", l)
			}
		}
		for j := range i {
			if q := v.FirewallSets[j]; q.Family == s.Family && q.Table == s.Table && q.Set == s.Set {
				k.errorf(path+".set", "%s is also ipv6.firewall_sets[%d]: list each set once, with all its links", s, j)
			}
		}
	}
}

// Advertised returns the prefixes advertised on the LAN: the provider
// prefixes known (configured or learned) in sadr mode, the internal
// prefix in nptv6 mode.
func (v *IPv6) Advertised() []IPv6Prefix {
	if v.Mode == IPv6ModeNPTv6 {
		return []IPv6Prefix{{Prefix: v.Internal}}
	}
	return v.Known()
}

// Known returns the entries whose prefix is known: configured, or
// learned and held.
func (v *IPv6) Known() []IPv6Prefix {
	ps := make([]IPv6Prefix, 0, len(v.Prefixes))
	for _, p := range v.Prefixes {
		if p.Prefix.IsValid() {
			ps = append(ps, p)
		}
	}
	return ps
}

// PDLinks returns the links with a dhcpv6_pd entry and the prefix length
// each asks for, in config order.
func (v *IPv6) PDLinks() []IPv6PDLink {
	var ls []IPv6PDLink
	for _, p := range v.Prefixes {
		if p.DHCPv6PD == nil || slices.ContainsFunc(ls, func(l IPv6PDLink) bool { return l.Link == p.Link }) {
			continue
		}
		ls = append(ls, IPv6PDLink{Link: p.Link, Length: p.DHCPv6PD.Length, RapidCommit: p.DHCPv6PD.RapidCommit})
	}
	return ls
}

// IPv6PDLink is a link whose delegated prefix is asked for.
type IPv6PDLink struct {
	Link        string
	Length      int
	RapidCommit bool
}

// LinkPrefixes returns the known IPv6 LAN prefixes of the named link.
func (v *IPv6) LinkPrefixes(link string) []netip.Prefix {
	var ps []netip.Prefix
	for _, p := range v.Prefixes {
		if p.Link == link && p.Prefix.IsValid() {
			ps = append(ps, p.Prefix)
		}
	}
	return ps
}
