package config

import (
	"strings"
	"testing"
)

// splitA is gateway A of a pair with split uplinks: isp1 its own, isp2
// the partner's, reached over the sync link.
const splitA = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - name: isp2
    interface: sync0
    gateway4: 203.0.113.250
    snat: false
    probes: [{target: 192.0.2.200}]
ha:
  node: gwa
  partner: gwb
  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}
  instances:
    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}
`

func TestTransitLink(t *testing.T) {
	fakeHAPrograms(t)
	c, err := Parse("split.yaml", []byte(splitA))
	if err != nil {
		t.Fatal(err)
	}
	if c.TransitLink() != 1 || c.IsTransit(0) || !c.IsTransit(1) {
		t.Errorf("transit link = %d, want 1 (isp2)", c.TransitLink())
	}
	if !c.SNATOn(0) || c.SNATOn(1) {
		t.Errorf("SNATOn = %v, %v: want isp1 translated, isp2 not", c.SNATOn(0), c.SNATOn(1))
	}
	// Without ha, the same link is an ordinary link without SNAT.
	noHA, _, _ := strings.Cut(splitA, "ha:")
	c, err = Parse("split.yaml", []byte(noHA))
	if err != nil {
		t.Fatal(err)
	}
	if c.TransitLink() != -1 || c.SNATOn(1) {
		t.Errorf("without ha: transit %d, snat %v", c.TransitLink(), c.SNATOn(1))
	}
}

func TestTransitErrors(t *testing.T) {
	fakeHAPrograms(t)
	for _, tc := range []struct{ old, new, want string }{
		{"    snat: false\n", "", `split.yaml:4:5: links[1].snat: a transit link to the partner must say snat: false`},
		{"snat: false", "snat: true", `split.yaml:7:11: links[1].snat: a transit link to the partner must say snat: false`},
		{"    probes: [{target: 192.0.2.200}]\n", "", `links[1].probes: missing: a transit link's probes must reach beyond the partner`},
		{"target: 192.0.2.200", "target: 203.0.113.250", `split.yaml:8:23: links[1].probes[0].target: 203.0.113.250 is on the sync link`},
		{"gateway4: 203.0.113.250", "gateway4: 203.0.113.249", `ha.sync.interface: "sync0" is an uplink: the sync link must be its own (a transit link`},
		{"    snat: false\n", "    snat: false\n    address4: 203.0.113.9\n", `links[1].address4: 203.0.113.9: a transit link's address is this node's sync address 203.0.113.249`},
		{"    snat: false\n", "    snat: false\n    gateway6: 2001:db8::1\n", `links[1].gateway6: a transit link carries IPv4 only`},
		{"    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}\n", "    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}\n    - {link: isp1, vrid: 52, virtual_addresses: [198.51.100.5/28]}\n", `ha.instances[1].link: a WAN instance (shared uplinks) with a transit link (split uplinks)`},
		{"ha:\n", "outbound: {mark_mask: 0x3}\nha:\n", `outbound.mark_mask: 0x3 has no room for 2 links and the mark of replies sent back to the partner`},
		{"    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}\n", "    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}\n    - {link: isp2, vrid: 52, virtual_addresses: [203.0.113.251/30]}\n", `ha.instances[1].interface: "sync0" is the sync link`},
	} {
		in := strings.Replace(splitA, tc.old, tc.new, 1)
		if in == splitA {
			t.Fatalf("%q not in the config", tc.old)
		}
		_, err := Parse("split.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: got %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
}
