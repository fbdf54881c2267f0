package config

import (
	"fmt"
	"net/netip"
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
}

// IPv6Prefix is one provider-assigned LAN prefix.
type IPv6Prefix struct {
	// Link is the link whose provider assigned the prefix.
	Link string `yaml:"link"`
	// Prefix is the prefix, normally a /64, e.g. 2001:db8:1:100::/64.
	Prefix netip.Prefix `yaml:"prefix"`
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
	if len(v.Prefixes) == 0 {
		k.errorf("ipv6.prefixes", "missing: each link's LAN prefix, e.g. [{link: isp1, prefix: 2001:db8:1:100::/64}]")
	}
	for i := range v.Prefixes {
		p := &v.Prefixes[i]
		path := fmt.Sprintf("ipv6.prefixes[%d]", i)
		if p.Link == "" {
			k.errorf(path+".link", "missing: the link whose provider assigned the prefix")
		} else if l := c.LinkByName(p.Link); l == nil {
			k.errorf(path+".link", "unknown link %q", p.Link)
		} else if !l.Gateway6.IsValid() {
			k.errorf(path+".link", "link %s has no gateway6: its prefix could not be routed", p.Link)
		}
		switch {
		case !p.Prefix.IsValid():
			k.errorf(path+".prefix", "missing: an IPv6 prefix such as 2001:db8:1:100::/64")
			continue
		case !p.Prefix.Addr().Is6() || p.Prefix.Addr().Is4In6():
			k.errorf(path+".prefix", "%s is not an IPv6 prefix", p.Prefix)
			continue
		case p.Prefix.Bits() != 64:
			k.errorf(path+".prefix", "%s: SLAAC needs a /64", p.Prefix)
			continue
		case p.Prefix.Masked() != p.Prefix:
			k.errorf(path+".prefix", "%s has host bits set: want %s", p.Prefix, p.Prefix.Masked())
			continue
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
	for i, a := range v.RDNSS {
		if !a.Is6() || a.Is4In6() {
			k.errorf(fmt.Sprintf("ipv6.rdnss[%d]", i), "%s is not an IPv6 address", a)
		}
	}
	r := &v.RA
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

// Advertised returns the prefixes advertised on the LAN: the provider
// prefixes in sadr mode, the internal prefix in nptv6 mode.
func (v *IPv6) Advertised() []IPv6Prefix {
	if v.Mode == IPv6ModeNPTv6 {
		return []IPv6Prefix{{Prefix: v.Internal}}
	}
	return v.Prefixes
}

// LinkPrefixes returns the IPv6 LAN prefixes of the named link.
func (v *IPv6) LinkPrefixes(link string) []netip.Prefix {
	var ps []netip.Prefix
	for _, p := range v.Prefixes {
		if p.Link == link {
			ps = append(ps, p.Prefix)
		}
	}
	return ps
}
