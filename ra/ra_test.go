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
	if rs.Family != "ip6" || len(rs.Chains) != 1 || rs.Chains[0].Hook != "postrouting" || !slices.Equal(rs.Chains[0].Rules, want) {
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
