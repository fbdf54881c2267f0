package ra

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/route"
)

const testConfig = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s, valid_lifetime: 2h, preferred_lifetime: 1h}
  rdnss: ["2001:db8:ffff::53"]
`

func parse(t *testing.T, s string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decode marshals and parses m back, as a host would see it.
func decode(t *testing.T, m *ndp.RouterAdvertisement) *ndp.RouterAdvertisement {
	t.Helper()
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return got.(*ndp.RouterAdvertisement)
}

func pios(m *ndp.RouterAdvertisement) map[netip.Addr]*ndp.PrefixInformation {
	out := map[netip.Addr]*ndp.PrefixInformation{}
	for _, o := range m.Options {
		if p, ok := o.(*ndp.PrefixInformation); ok {
			out[p.Prefix] = p
		}
	}
	return out
}

func TestAdvertisementDeprecatesDownLink(t *testing.T) {
	c := parse(t, testConfig)
	p1, p2 := c.IPv6.Prefixes[0].Prefix, c.IPv6.Prefixes[1].Prefix
	m := decode(t, Advertisement(c.IPv6, []PrefixState{
		{Link: "isp1", Prefix: p1, Usable: false},
		{Link: "isp2", Prefix: p2, Usable: true},
		{Link: "isp1", Prefix: netip.MustParsePrefix("2001:db8:1:200::/64"), Retired: true},
	}, true))
	if m.RouterLifetime != 30*time.Minute || m.CurrentHopLimit != 64 {
		t.Errorf("router lifetime %s hop limit %d", m.RouterLifetime, m.CurrentHopLimit)
	}
	ps := pios(m)
	if len(ps) != 3 {
		t.Fatalf("want 3 prefix options, got %d", len(ps))
	}
	for addr, want := range map[netip.Addr][2]time.Duration{
		p1.Addr():                               {2 * time.Hour, 0},         // down: deprecated, still valid
		p2.Addr():                               {2 * time.Hour, time.Hour}, // up: preferred
		netip.MustParseAddr("2001:db8:1:200::"): {0, 0},                     // retired
	} {
		p := ps[addr]
		if p == nil || p.PrefixLength != 64 || !p.OnLink || !p.AutonomousAddressConfiguration {
			t.Errorf("%s: %+v", addr, p)
			continue
		}
		if p.ValidLifetime != want[0] || p.PreferredLifetime != want[1] {
			t.Errorf("%s: valid %s preferred %s, want %s %s", addr, p.ValidLifetime, p.PreferredLifetime, want[0], want[1])
		}
	}
	var rdnss *ndp.RecursiveDNSServer
	for _, o := range m.Options {
		if r, ok := o.(*ndp.RecursiveDNSServer); ok {
			rdnss = r
		}
	}
	if rdnss == nil || rdnss.Lifetime != 30*time.Second || !slices.Equal(rdnss.Servers, []netip.Addr{netip.MustParseAddr("2001:db8:ffff::53")}) {
		t.Errorf("rdnss %+v", rdnss)
	}

	// The final advertisement withdraws the router and the DNS servers.
	last := decode(t, Advertisement(c.IPv6, []PrefixState{{Link: "isp1", Prefix: p1, Usable: true}}, false))
	if last.RouterLifetime != 0 {
		t.Errorf("final router lifetime %s", last.RouterLifetime)
	}
	for _, o := range last.Options {
		if r, ok := o.(*ndp.RecursiveDNSServer); ok && r.Lifetime != 0 {
			t.Errorf("final rdnss lifetime %s", r.Lifetime)
		}
	}
}

func TestRules(t *testing.T) {
	c := parse(t, testConfig)
	got := Rules(c, route.DefaultScheme, "")
	p1, p2 := c.IPv6.Prefixes[0].Prefix, c.IPv6.Prefixes[1].Prefix
	want := []Rule{
		{Priority: 30900, Src: p1, Suppress: true},
		{Priority: 30901, Src: p1, Table: 31000},
		{Priority: 30900, Src: p2, Suppress: true},
		{Priority: 30901, Src: p2, Table: 31001},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Rules = %+v\nwant %+v", got, want)
	}
	if g := GatewayAddr(p2); g != netip.MustParsePrefix("2001:db8:2:100::1/64") {
		t.Errorf("GatewayAddr = %s", g)
	}
}

const nptConfig = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
ipv6:
  lan: lan0
  mode: nptv6
  internal: "2001:db8:100::/64"
  prefixes:
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
`

func TestNPTv6(t *testing.T) {
	c := parse(t, nptConfig)
	rs := NPTRuleset(c)
	want := []string{
		`oifname "wan2" ip6 saddr 2001:db8:100::/64 snat ip6 prefix to 2001:db8:2:100::/64`,
		`oifname "wan1" ip6 saddr 2001:db8:100::/64 snat ip6 prefix to 2001:db8:1:100::/64`,
	}
	wantIn := []string{
		`iifname "wan2" ip6 daddr 2001:db8:2:100::/64 dnat ip6 prefix to 2001:db8:100::/64`,
		`iifname "wan1" ip6 daddr 2001:db8:1:100::/64 dnat ip6 prefix to 2001:db8:100::/64`,
	}
	if rs.Family != "ip6" || len(rs.Chains) != 2 || rs.Chains[1].Hook != "postrouting" || !slices.Equal(rs.Chains[1].Rules, want) ||
		rs.Chains[0].Hook != "prerouting" || rs.Chains[0].Priority != "dstnat" || !slices.Equal(rs.Chains[0].Rules, wantIn) {
		t.Errorf("NPTRuleset:\n%s", rs)
	}
	up := map[string]bool{"isp1": true, "isp2": true}
	usable := func(l string) bool { return up[l] }
	if a := Active(c.IPv6, usable, ""); a != "isp2" {
		t.Errorf("both up: active %s, want isp2 (first in ipv6.prefixes)", a)
	}
	up["isp2"] = false
	if a := Active(c.IPv6, usable, "isp2"); a != "isp1" {
		t.Errorf("isp2 down: active %s", a)
	}
	up["isp1"] = false
	if a := Active(c.IPv6, usable, "isp1"); a != "isp1" {
		t.Errorf("all down: active %s, want the previous one", a)
	}
	internal := netip.MustParsePrefix("2001:db8:100::/64")
	got := Rules(c, route.DefaultScheme, "isp2")
	if !slices.Equal(got, []Rule{{Priority: 30900, Src: internal, Suppress: true}, {Priority: 30901, Src: internal, Table: 31001, Mask: 0x00ff0000}}) {
		t.Errorf("nptv6 rules %+v", got)
	}
	// Only the internal prefix is advertised, always preferred.
	m := decode(t, Advertisement(c.IPv6, []PrefixState{{Prefix: internal, Usable: true}}, true))
	if ps := pios(m); len(ps) != 1 || ps[internal.Addr()] == nil || ps[internal.Addr()].PreferredLifetime == 0 {
		t.Errorf("nptv6 advertisement: %+v", ps)
	}
}

const pdTestConfig = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s, valid_lifetime: 2h, preferred_lifetime: 1h}
`

// TestLearnedPrefixes: an entry not learned yet is skipped everywhere;
// once learned, the PIO lifetimes are capped by the delegation's.
func TestLearnedPrefixes(t *testing.T) {
	cfg := parse(t, pdTestConfig)
	if got := cfg.IPv6.Advertised(); len(got) != 1 || got[0].Link != "isp2" {
		t.Fatalf("advertised before learning: %+v", got)
	}
	rs := Rules(cfg, route.SchemeFor(cfg), "")
	if len(rs) != 2 || rs[0].Src.String() != "2001:db8:2:100::/64" {
		t.Fatalf("rules before learning: %+v", rs)
	}
	if n := len(NPTRuleset(cfg).Chains[0].Rules); n != 1 {
		t.Errorf("nptv6 rules before learning: %d, want 1", n)
	}
	if a := Active(cfg.IPv6, func(string) bool { return true }, ""); a != "isp2" {
		t.Errorf("active link %q before learning, want isp2 (the only known prefix)", a)
	}

	// Learned: 2001:db8:1:8000::/56 subnet 1 → 2001:db8:1:8001::/64,
	// valid 12 s and preferred 8 s left.
	p := &cfg.IPv6.Prefixes[0]
	p.Prefix = netip.MustParsePrefix("2001:db8:1:8001::/64")
	now := time.Now()
	p.Learned = &config.LearnedPrefix{Delegated: netip.MustParsePrefix("2001:db8:1:8000::/56"), Preferred: now.Add(8500 * time.Millisecond), Valid: now.Add(12500 * time.Millisecond)}
	a := &Advertiser{cfg: cfg, usable: map[string]bool{"isp1": true, "isp2": true}, retired: map[netip.Prefix]retired{}}
	ps := a.stateLocked(now)
	got := pios(decode(t, Advertisement(cfg.IPv6, ps, true)))
	l := got[netip.MustParseAddr("2001:db8:1:8001::")]
	if l == nil || l.ValidLifetime != 12*time.Second || l.PreferredLifetime != 8*time.Second {
		t.Fatalf("learned PIO %+v: want valid 12s, preferred 8s (the delegation's)", l)
	}
	if s := got[netip.MustParseAddr("2001:db8:2:100::")]; s == nil || s.ValidLifetime != 2*time.Hour || s.PreferredLifetime != time.Hour {
		t.Errorf("static PIO %+v: want the configured lifetimes", s)
	}
	// A long delegation does not raise the configured lifetimes; a down
	// link still deprecates; an expired one advertises 0.
	p.Learned.Valid, p.Learned.Preferred = now.Add(48*time.Hour), now.Add(24*time.Hour)
	a.usable["isp1"] = false
	l = pios(decode(t, Advertisement(cfg.IPv6, a.stateLocked(now), true)))[netip.MustParseAddr("2001:db8:1:8001::")]
	if l.ValidLifetime != 2*time.Hour || l.PreferredLifetime != 0 {
		t.Errorf("long delegation, link down: valid %s preferred %s, want 2h and 0", l.ValidLifetime, l.PreferredLifetime)
	}
	p.Learned.Valid, p.Learned.Preferred = now.Add(-time.Second), now.Add(-2*time.Second)
	a.usable["isp1"] = true
	l = pios(decode(t, Advertisement(cfg.IPv6, a.stateLocked(now), true)))[netip.MustParseAddr("2001:db8:1:8001::")]
	if l.ValidLifetime != 0 || l.PreferredLifetime != 0 {
		t.Errorf("expired delegation: valid %s preferred %s, want 0", l.ValidLifetime, l.PreferredLifetime)
	}
}
