package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const ipv6Links = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
  - {name: lte, interface: wwan0, gateway4: 192.0.2.129}
`

func TestIPv6Defaults(t *testing.T) {
	c, err := Parse("v6.yaml", []byte(ipv6Links+`
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  rdnss: ["2001:db8:ffff::53"]
`))
	if err != nil {
		t.Fatal(err)
	}
	v := c.IPv6
	if v.Mode != IPv6ModeSADR || v.RulePriority != DefaultRulePriority-100 {
		t.Errorf("mode %q rule_priority %d", v.Mode, v.RulePriority)
	}
	r := v.RA
	if r.Interval.D() != 10*time.Second || r.RouterLifetime.D() != 30*time.Minute || r.ValidLifetime.D() != 24*time.Hour ||
		r.PreferredLifetime.D() != 4*time.Hour || r.RDNSSLifetime.D() != 30*time.Second || r.Retire.D() != 30*time.Second {
		t.Errorf("ra defaults: %+v", r)
	}
	if got := v.LinkPrefixes("isp2"); len(got) != 1 || got[0] != netip.MustParsePrefix("2001:db8:2:100::/64") {
		t.Errorf("LinkPrefixes(isp2) = %v", got)
	}
	if got := v.LinkPrefixes("lte"); len(got) != 0 {
		t.Errorf("LinkPrefixes(lte) = %v", got)
	}
}

func TestIPv6RulePriorityFollowsOutbound(t *testing.T) {
	c, err := Parse("v6.yaml", []byte(ipv6Links+`
outbound: {rule_priority: 20000}
ipv6:
  lan: lan0
  prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]
  ra: {interval: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.IPv6.RulePriority != 19900 || c.IPv6.RA.Retire.D() != 6*time.Second {
		t.Errorf("rule_priority %d retire %s", c.IPv6.RulePriority, c.IPv6.RA.Retire.D())
	}
}

func TestIPv6NPTv6(t *testing.T) {
	c, err := Parse("v6.yaml", []byte(ipv6Links+`
ipv6:
  lan: lan0
  mode: nptv6
  internal: "2001:db8:100::/64"
  prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}, {link: isp2, prefix: "2001:db8:2:100::/64"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.IPv6.Advertised(); len(a) != 1 || a[0].Prefix != netip.MustParsePrefix("2001:db8:100::/64") {
		t.Errorf("Advertised = %v", a)
	}
}

func TestIPv6Errors(t *testing.T) {
	for _, c := range []struct{ name, yaml, field, msg string }{
		{"no lan", `ipv6: {prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.lan", "missing"},
		{"no prefixes", `ipv6: {lan: lan0}`, "ipv6.prefixes", "missing"},
		{"unknown link", `ipv6: {lan: lan0, prefixes: [{link: isp9, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.prefixes[0].link", "unknown link"},
		{"no gateway6", `ipv6: {lan: lan0, prefixes: [{link: lte, prefix: "2001:db8:3:100::/64"}]}`, "ipv6.prefixes[0].link", "no gateway6"},
		{"not /64", `ipv6: {lan: lan0, prefixes: [{link: isp1, prefix: "2001:db8:1::/56"}]}`, "ipv6.prefixes[0].prefix", "needs a /64"},
		{"host bits", `ipv6: {lan: lan0, prefixes: [{link: isp1, prefix: "2001:db8:1:100::1/64"}]}`, "ipv6.prefixes[0].prefix", "host bits"},
		{"ipv4", `ipv6: {lan: lan0, prefixes: [{link: isp1, prefix: "192.0.2.0/24"}]}`, "ipv6.prefixes[0].prefix", "not an IPv6 prefix"},
		{"overlap", `ipv6: {lan: lan0, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}, {link: isp2, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.prefixes[1].prefix", "overlaps"},
		{"rdnss v4", `ipv6: {lan: lan0, rdnss: [192.0.2.53], prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.rdnss[0]", "not an IPv6"},
		{"mode", `ipv6: {lan: lan0, mode: nat66, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.mode", "unknown value"},
		{"nptv6 without internal", `ipv6: {lan: lan0, mode: nptv6, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.internal", "missing"},
		{"nptv6 internal /48", `ipv6: {lan: lan0, mode: nptv6, internal: "2001:db8:100::/48", prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.internal", "want an IPv6 /64"},
		{"nptv6 overlap", `ipv6: {lan: lan0, mode: nptv6, internal: "2001:db8:1:100::/64", prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.prefixes[0].prefix", "overlaps ipv6.internal"},
		{"internal without nptv6", `ipv6: {lan: lan0, internal: "fd00:1::/64", prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.internal", "nptv6 only"},
		{"nat6", "outbound: {nat6: true}\n" + `ipv6: {lan: lan0, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.mode", "outbound.nat6"},
		{"interval", `ipv6: {lan: lan0, ra: {interval: 10ms}, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.ra.interval", "below 100ms"},
		{"preferred > valid", `ipv6: {lan: lan0, ra: {valid_lifetime: 1h, preferred_lifetime: 2h}, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.ra.preferred_lifetime", "above valid_lifetime"},
		{"router lifetime", `ipv6: {lan: lan0, ra: {router_lifetime: 3h}, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.ra.router_lifetime", "above 9000s"},
		{"priority overlap", `ipv6: {lan: lan0, rule_priority: 31005, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.rule_priority", "overlaps outbound"},
		{"priority just below", `ipv6: {lan: lan0, rule_priority: 30999, prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}]}`, "ipv6.rule_priority", "overlaps outbound"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("v6.yaml", []byte(ipv6Links+c.yaml+"\n"))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("want validation errors, got %v", err)
			}
			for _, e := range es {
				if e.Field == c.field && strings.Contains(e.Msg, c.msg) {
					if e.Line == 0 {
						t.Errorf("%s: no position", e)
					}
					return
				}
			}
			t.Errorf("want %s: %s..., got %v", c.field, c.msg, err)
		})
	}
}
