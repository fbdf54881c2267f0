// Package ra makes a multihomed site's IPv6 work without NAT: it sends
// router advertisements on the LAN with every provider's prefix (one
// Prefix Information option each, on-link and autonomous, plus RDNSS),
// answers router solicitations, and follows the link monitor: when a link
// goes down its prefix is advertised at once with preferred lifetime 0
// (RFC 8475), so hosts stop choosing those addresses for new connections,
// and preferred again when it comes back. It also routes by source prefix
// (RFC 8678: ip -6 rule from <prefix of link A> lookup <table of A>),
// assigns the gateway's own address (::1) in each prefix on the LAN
// interface, and removes what it added when it stops. It keeps the
// operator's own nftables sets (ipv6.firewall_sets) filled with the LAN
// prefixes, and leaves those elements when it stops (sets.go). See
// docs/ipv6.md.
package ra

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/nft"
	"github.com/multihome/multihome/route"
)

// PrefixState is what one advertisement says about one prefix.
type PrefixState struct {
	Link   string
	Prefix netip.Prefix
	// Usable is false when the link accepts no new flows (down, admin
	// down or drained): preferred lifetime 0.
	Usable bool
	// Retired prefixes (removed from the config) get both lifetimes 0.
	Retired bool
	// Capped, for a prefix learned by DHCPv6-PD, bounds the advertised
	// lifetimes by what is left of the delegation's (RFC 9096:
	// never advertise a prefix for longer than it is delegated).
	Capped                   bool
	ValidLeft, PreferredLeft time.Duration
}

// Advertisement builds the router advertisement for the prefixes given.
// router is false for the final advertisement sent on shutdown (router
// lifetime 0, RFC 4861 section 6.2.5).
func Advertisement(v *config.IPv6, prefixes []PrefixState, router bool) *ndp.RouterAdvertisement {
	m := &ndp.RouterAdvertisement{
		CurrentHopLimit:           64,
		RouterSelectionPreference: ndp.Medium,
	}
	if router {
		m.RouterLifetime = v.RA.RouterLifetime.D()
	}
	for _, p := range prefixes {
		pi := &ndp.PrefixInformation{
			PrefixLength:                   uint8(p.Prefix.Bits()),
			OnLink:                         true,
			AutonomousAddressConfiguration: true,
			ValidLifetime:                  v.RA.ValidLifetime.D(),
			PreferredLifetime:              v.RA.PreferredLifetime.D(),
			Prefix:                         p.Prefix.Masked().Addr(),
		}
		if p.Capped {
			pi.ValidLifetime = min(pi.ValidLifetime, max(p.ValidLeft, 0).Truncate(time.Second))
			pi.PreferredLifetime = min(pi.PreferredLifetime, max(p.PreferredLeft, 0).Truncate(time.Second), pi.ValidLifetime)
		}
		switch {
		case p.Retired:
			pi.ValidLifetime, pi.PreferredLifetime = 0, 0
		case !p.Usable:
			pi.PreferredLifetime = 0
		}
		m.Options = append(m.Options, pi)
	}
	if len(v.RDNSS) > 0 {
		lt := v.RA.RDNSSLifetime.D()
		if !router {
			lt = 0
		}
		m.Options = append(m.Options, &ndp.RecursiveDNSServer{Lifetime: lt, Servers: slices.Clone(v.RDNSS)})
	}
	return m
}

// Rule is one IPv6 source rule the package installs.
type Rule struct {
	Priority int
	Src      netip.Prefix
	// Table is the table looked up; 0 with Suppress means
	// "lookup main suppress_prefixlength 0".
	Table    int
	Suppress bool
	// Mask, when set, restricts the rule to packets whose mark is 0 under
	// it ("fwmark 0/MASK"): new flows, not those the outbound datapath
	// already pinned to a link by their conntrack mark.
	Mask uint32
}

// Rules returns the source-routing rules for the config: for each prefix,
// at priority P "from PREFIX lookup main suppress_prefixlength 0" (the
// site's own and connected routes first) and at P+1 "from PREFIX lookup
// TABLE", TABLE being the link's table that the outbound datapath fills
// with a default route via its gateway6.
//
// In nptv6 mode the internal prefix gets the two rules instead, its table
// being the one of link active (the link new flows leave by), for
// unmarked packets only: a flow already established keeps the link (and
// so the translation) it started with, through the outbound datapath's
// conntrack mark and fwmark rules.
func Rules(cfg *config.Config, s route.Scheme, active string) []Rule {
	v := cfg.IPv6
	var rs []Rule
	if v.Mode == config.IPv6ModeNPTv6 {
		i := cfg.LinkIndex(active)
		if i < 0 {
			return nil
		}
		return []Rule{
			{Priority: v.RulePriority, Src: v.Internal.Masked(), Suppress: true},
			{Priority: v.RulePriority + 1, Src: v.Internal.Masked(), Table: s.Table(i), Mask: s.MarkMask}}
	}
	for _, p := range v.Known() {
		i := cfg.LinkIndex(p.Link)
		if i < 0 {
			continue
		}
		rs = append(rs,
			Rule{Priority: v.RulePriority, Src: p.Prefix.Masked(), Suppress: true},
			Rule{Priority: v.RulePriority + 1, Src: p.Prefix.Masked(), Table: s.Table(i)})
	}
	return rs
}

// GatewayAddr is the gateway's own address in a LAN prefix: ::1.
func GatewayAddr(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits())
}

// NPTv6 table: prefix translation of the internal prefix, per uplink.
const (
	NPTFamily = "ip6"
	NPTTable  = "multihome_nptv6"
)

// NPTRuleset returns the nftables table that, in nptv6 mode, maps the
// internal prefix to each link's prefix on the way out of that link's
// interface, and each link's prefix back to the internal one for
// connections that come in through that link (RFC 6296 is bidirectional:
// a LAN server's internal address is reachable at the same interface
// identifier in every provider prefix, which is what DNS host6 records
// publish). It is conntrack-based prefix NAT: replies are mapped back, and
// a flow keeps its mapping for its life; the outbound datapath's
// conntrack mark sends the replies of an inbound flow out by the link it
// came in through.
func NPTRuleset(cfg *config.Config) nft.Ruleset {
	v := cfg.IPv6
	var out, in []string
	for _, p := range v.Known() {
		l := cfg.LinkByName(p.Link)
		if l == nil {
			continue
		}
		out = append(out, fmt.Sprintf("oifname %s ip6 saddr %s snat ip6 prefix to %s", nft.Quote(l.Interface), v.Internal.Masked(), p.Prefix.Masked()))
		in = append(in, fmt.Sprintf("iifname %s ip6 daddr %s dnat ip6 prefix to %s", nft.Quote(l.Interface), p.Prefix.Masked(), v.Internal.Masked()))
	}
	return nft.Ruleset{Family: NPTFamily, Name: NPTTable, Header: []string{"multihome NPTv6 (docs/ipv6.md)"},
		Chains: []nft.Chain{
			{Name: "npt_in", Type: "nat", Hook: "prerouting", Priority: "dstnat", Policy: "accept", Rules: in},
			{Name: "npt_out", Type: "nat", Hook: "postrouting", Priority: "srcnat", Policy: "accept", Rules: out},
		}}
}

// Active returns the link new flows of the internal prefix use in nptv6
// mode: the first link, in the order of ipv6.prefixes, that accepts new
// flows; prev when none does.
func Active(v *config.IPv6, usable func(link string) bool, prev string) string {
	known := v.Known()
	for _, p := range known {
		if usable(p.Link) {
			return p.Link
		}
	}
	if prev != "" && slices.ContainsFunc(known, func(p config.IPv6Prefix) bool { return p.Link == prev }) {
		return prev
	}
	if len(known) > 0 {
		return known[0].Link
	}
	return ""
}

// retired is a prefix removed by a reload, advertised with zero lifetimes
// until its time is up.
type retired struct {
	link  string
	until time.Time
}
