package config

import (
	"errors"
	"strings"
	"testing"
)

const topoLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
`

const topoGood = topoLinks + `topology:
  ha_partners: [gw2]
  power_feeds: [{name: feed-a}, {name: feed-b}]
  conduits: [{name: north, description: north building entry}]
  devices:
    - {name: gw2, kind: gateway, power: [feed-b]}
    - {name: sw1, kind: switch, power: [feed-a, feed-b], location: rack 1}
    - {name: cpe1}
  providers:
    - {name: acme, asn: 64500, upstreams: [AS3356], networks: [198.51.100.0/28]}
    - {name: globex, upstreams: [acme]}
  links:
    - {name: isp1, provider: acme, path: [gateway, sw1, north, cpe1]}
    - {name: isp2, provider: globex, path: [sw1]}
  dns:
    - {role: authoritative, address: 198.51.100.53, links: [isp1], device: sw1}
    - {name: r1, role: resolver, address: 192.0.2.1}
  prefixes: [198.51.100.0/24, "2001:db8::/48"]
`

func TestTopologyDefaults(t *testing.T) {
	c, err := Parse("topo.yaml", []byte(topoGood))
	if err != nil {
		t.Fatal(err)
	}
	tp := c.Topology
	if tp.Gateway != DefaultTopologyGateway {
		t.Errorf("gateway %q", tp.Gateway)
	}
	if tp.Devices[2].Kind != DeviceRouter {
		t.Errorf("default kind %q", tp.Devices[2].Kind)
	}
	if tp.DNS[0].Name != "198.51.100.53" {
		t.Errorf("default DNS name %q", tp.DNS[0].Name)
	}
	if c2, err := Parse("none.yaml", []byte(topoLinks)); err != nil || c2.Topology != nil {
		t.Errorf("no section: %v %+v", err, c2)
	}
}

func TestTopologyErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
	}{
		{"topology:\n  devices: [{name: a}, {name: a}]\n", `topo.yaml:6:31: topology.devices[1].name: duplicate name "a" (already topology.devices[0])`},
		{"topology:\n  devices: [{name: a, kind: toaster}]\n", `topology.devices[0].kind: unknown kind "toaster"`},
		{"topology:\n  devices: [{name: a, power: [nope]}]\n", `topology.devices[0].power[0]: unknown power feed "nope"`},
		{"topology:\n  ha_partners: [gw9]\n", `topology.ha_partners[0]: unknown device "gw9"`},
		{"topology:\n  ha_partners: [gateway]\n", `topology.ha_partners[0]: "gateway" is the gateway itself`},
		{"topology:\n  links: [{name: isp9}]\n", `topology.links[0].name: unknown link "isp9"`},
		{"topology:\n  links: [{name: isp1}, {name: isp1}]\n", `topology.links[1].name: link "isp1" already placed`},
		{"topology:\n  links: [{name: isp1, provider: nope}]\n", `topology.links[0].provider: unknown provider "nope"`},
		{"topology:\n  links: [{name: isp1, path: [sw9]}]\n", `topology.links[0].path[0]: unknown device or conduit "sw9"`},
		{"topology:\n  power_feeds: [{name: f}]\n  links: [{name: isp1, path: [f]}]\n", `topology.links[0].path[0]: "f" is a power feed`},
		{"topology:\n  providers: [{name: p}, {name: p}]\n", `topology.providers[1].name: duplicate provider "p"`},
		{"topology:\n  providers: [{name: p, networks: [198.51.100.1/24]}]\n", `has host bits set`},
		{"topology:\n  dns: [{name: x, role: primary, address: 192.0.2.1}]\n", `topology.dns[0].role: want authoritative or resolver`},
		{"topology:\n  dns: [{name: x, role: resolver}]\n", `topology.dns[0].address: missing`},
		{"topology:\n  dns: [{name: x, role: resolver, address: 192.0.2.1, links: [isp7]}]\n", `topology.dns[0].links[0]: unknown link "isp7"`},
		{"topology:\n  prefixes: [198.51.100.7/24]\n", `topology.prefixes[0]: 198.51.100.7/24 has host bits set`},
		{"topology:\n  prefixes: [not-a-prefix]\n", `topology.prefixes[0]`},
		{"topology:\n  devcies: []\n", `unknown field "devcies" (did you mean "devices"?)`},
	} {
		_, err := Parse("topo.yaml", []byte(topoLinks+tc.yaml))
		var es Errors
		if !errors.As(err, &es) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// FuzzTopology runs the topology section's checks on arbitrary input: they
// must never panic.
func FuzzTopology(f *testing.F) {
	f.Add(topoGood)
	f.Add(topoLinks + "topology:\n  gateway: sw1\n  devices: [{name: sw1}]\n  links: [{name: isp1, path: [sw1, sw1]}]\n")
	f.Add(topoLinks + "topology:\n  power_feeds: [{name: \"\"}]\n  conduits: [{name: x}, {name: x}]\n  dns: [{role: resolver}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "file:") || strings.Contains(s, "secret_file") {
			return // no reading of arbitrary paths
		}
		Parse("fuzz.yaml", []byte(s))
	})
}
