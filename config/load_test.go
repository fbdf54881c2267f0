package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
links:
  - name: isp1
    interface: wan1
    gateway4: 198.51.100.1
`

func TestMinimalDefaults(t *testing.T) {
	c, err := Parse("min.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Links[0]
	if l.Weight != 1 || l.Priority != 1 {
		t.Errorf("weight/priority = %d/%d, want 1/1", l.Weight, l.Priority)
	}
	if len(l.Probes) != 1 || l.Probes[0].Type != ProbeICMP || l.Probes[0].Target != "198.51.100.1" {
		t.Errorf("default probe = %+v, want icmp to the gateway", l.Probes)
	}
	h := l.Health
	if h.Interval.D() != 200*time.Millisecond || h.DownAfter != 3 || h.UpAfter != 5 || h.MinTargetsUp != 1 ||
		h.HoldDown.D() != 2*time.Second || h.Saturation.Threshold != 0.9 || h.Degraded.Loss != 0.1 {
		t.Errorf("health defaults not filled: %+v", h)
	}
	if c.Log.Level != "info" || c.Log.Format != "text" {
		t.Errorf("log defaults = %+v", c.Log)
	}
}

func TestDefaultsInheritance(t *testing.T) {
	c, err := Parse("inh.yaml", []byte(`
defaults:
  health: {interval: 100ms, down_after: 4}
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    health: {down_after: 2}
    capacity: {down: 100Mbit, up: 1.5Gbit}
  - name: b
    interface: wan2
    gateway4: 198.51.100.17
    weight: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Links[0], c.Links[1]
	if a.Health.Interval.D() != 100*time.Millisecond || a.Health.DownAfter != 2 {
		t.Errorf("link a health = %+v", a.Health)
	}
	if b.Health.DownAfter != 4 || b.Weight != 3 {
		t.Errorf("link b = %+v", b)
	}
	if a.Capacity.Down != 100e6 || a.Capacity.Up != 1.5e9 {
		t.Errorf("capacity = %+v", a.Capacity)
	}
}

// host6YAML and host6IPv6 build the dns host6 rows of TestBadConfigs:
// the records line goes between them.
const host6YAML = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
dns:
  listen: ["198.51.100.2:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.2"]
      names:
        - name: lanhost
`

// pdLinks starts an ipv6 section whose prefixes follow (engineer D).
const pdLinks = "links:\n  - {name: isp1, interface: wan1, gateway6: \"2001:db8:1::1\"}\nipv6:\n  lan: lan0\n  prefixes:\n"

// fwPrefix ends pdLinks with one prefix and starts ipv6.firewall_sets (engineer E).
const fwPrefix = "    - {link: isp1, prefix: \"2001:db8:1:100::/64\"}\n  firewall_sets:\n"

const host6IPv6 = "ipv6:\n  lan: lan0\n  prefixes: [{link: isp1, prefix: \"2001:db8:1:100::/64\"}]\n"

// TestBadConfigs checks that each mistake is reported with file, line,
// column, field and a reason a person can act on.
func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", `
links:
  - name: a
    interface: wan1
    gatway4: 198.51.100.1
`, `bad.yaml:5:5: links[0].gatway4: unknown field "gatway4" (did you mean "gateway4"?)`},
		{"bad address", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.300
`, `bad.yaml:5:15: links[0].gateway4: bad address "198.51.100.300": IPv4 field has value >255; want an IPv4 or IPv6 address, like 192.0.2.1 or 2001:db8::1`},
		{"wrong family", `
links:
  - name: a
    interface: wan1
    gateway4: 2001:db8::1
`, `bad.yaml:5:15: links[0].gateway4: 2001:db8::1 is not an IPv4 address`},
		{"bad duration", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    health:
      interval: 200
`, `bad.yaml:7:17: links[0].health.interval: bad duration "200": want a number with a unit, like 200ms, 2s or 1m`},
		{"bad rate", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    capacity: {down: fast}
`, `bad.yaml:6:22: links[0].capacity.down: bad rate "fast": want a number with a unit, like 100Mbit, 1.5Gbit or 800kbit`},
		{"bad percent", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    health: {degraded: {loss: 150%}}
`, `bad.yaml:6:31: links[0].health.degraded.loss: bad percentage "150%": want 0%..100%, like 10% or 0.1`},
		{"duplicate name", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
  - name: a
    interface: wan2
    gateway4: 198.51.100.17
`, `bad.yaml:6:11: links[1].name: duplicate link name "a" (also links[0])`},
		{"duplicate interface", `
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
  - {name: b, interface: wan1, gateway4: 198.51.100.17}
`, `bad.yaml:4:26: links[1].interface: interface "wan1" already used by links[0]`},
		{"missing interface", `
links:
  - name: a
    gateway4: 198.51.100.1
`, `bad.yaml:3:5: links[0].interface: missing: every link needs its kernel interface`},
		{"no probes possible", `
links:
  - name: a
    interface: wan1
`, `bad.yaml:3:5: links[0].probes: missing: give probe targets, or a gateway4/gateway6 to probe`},
		{"bad probe type", `
links:
  - name: a
    interface: wan1
    probes: [{type: smoke, target: 203.0.113.10}]
`, `bad.yaml:5:21: links[0].probes[0].type: unknown probe type "smoke": want icmp, tcp, http, https or dns`},
		{"tcp target without port", `
links:
  - name: a
    interface: wan1
    probes: [{type: tcp, target: "203.0.113.10:0"}]
`, `bad.yaml:5:34: links[0].probes[0].target: "203.0.113.10:0" is not IP:port (e.g. 203.0.113.10:443)`},
		{"quorum too large", `
links:
  - name: a
    interface: wan1
    probes: [{target: 203.0.113.10}, {target: 203.0.113.11}]
    health: {min_targets_up: 3}
`, `bad.yaml:6:30: links[0].health.min_targets_up: quorum 3 is more than the link's 2 probe targets`},
		{"no hysteresis", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    health: {degraded: {loss: 5%}, recovered: {loss: 10%}}
`, `bad.yaml:6:54: links[0].health.recovered.loss: 10% is above degraded.loss 5%: the link could never recover`},
		{"wrong kind", `
links:
  name: a
`, `bad.yaml:3:3: links: want a list, got a mapping`},
		{"not an integer", `
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1, weight: heavy}
`, `bad.yaml:3:64: links[0].weight: want an integer, got "heavy"`},
		{"bad log level", `
log: {level: loud}
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
`, `bad.yaml:2:14: log.level: unknown level "loud": want debug, info, warn or error`},
		{"api open to the network without a token", `
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
api: {listen: "0.0.0.0:9180"}
`, `bad.yaml:4:15: api.listen: "0.0.0.0:9180" is reachable from the network: set api.token or api.token_file`},
		// dns host6 records (engineer C): AAAA = LAN prefix | interface identifier.
		{"dns host6 without an ipv6 section", host6YAML + "          records: [{link: isp1, host6: \"::80\"}]\n",
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: needs an ipv6 section: host6 is the host's address in each of link isp1's ipv6.prefixes`},
		{"dns host6 on a link without LAN prefix", host6YAML + "          records: [{link: isp2, host6: \"::80\"}]\n" + host6IPv6,
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: link isp2 has no ipv6.prefixes entry: host6 is the host's address in each of the link's LAN prefixes`},
		{"dns host6 with prefix bits", host6YAML + "          records: [{link: isp1, host6: \"2001:db8::80\"}]\n" + host6IPv6,
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: 2001:db8::80 has bits in the top 64 (the prefix's): want an interface identifier such as ::80`},
		{"dns host6 and aaaa", host6YAML + "          records: [{link: isp1, host6: \"::80\", aaaa: \"2001:db8:1:100::80\"}]\n" + host6IPv6,
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: give aaaa or host6, not both`},
		{"dns host6 IPv4", host6YAML + "          records: [{link: isp1, host6: 192.0.2.80}]\n" + host6IPv6,
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: 192.0.2.80 is not an IPv6 interface identifier: want e.g. "::80"`},
		{"dns host6 all zero", host6YAML + "          records: [{link: isp1, host6: \"::\"}]\n" + host6IPv6,
			`bad.yaml:12:41: dns.zones[0].names[0].records[0].host6: :: is the subnet-router anycast address: want the host's interface identifier, e.g. ::80`},
		{"dns name host6 without an ipv6 section", host6YAML + "          host6: \"::80\"\n",
			`bad.yaml:12:18: dns.zones[0].names[0].host6: needs an ipv6 section with prefixes: host6 is the host's address in each link's ipv6.prefixes`},
		{"dns name host6 with prefix bits", host6YAML + "          host6: \"2001:db8::80\"\n" + host6IPv6,
			`bad.yaml:12:18: dns.zones[0].names[0].host6: 2001:db8::80 has bits in the top 64 (the prefix's): want an interface identifier such as ::80`},
		// end of dns host6 rows.
		// links[].bfd rows (engineer B).
		{"link bfd without a peer", `
links:
  - {name: a, interface: wan1, probes: [{target: 203.0.113.10}], bfd: {}}
`, `bad.yaml:3:71: links[0].bfd.peer: missing: give the next hop's address, or a gateway4/gateway6 on the link`},
		{"link bfd multicast peer", `
links:
  - {name: a, interface: wan1, gateway6: "2001:db8:1::1", bfd: {peer: "ff02::1"}}
`, `bad.yaml:3:71: links[0].bfd.peer: ff02::1 is not a unicast next hop`},
		{"link bfd peer zone", `
links:
  - {name: a, interface: wan1, gateway6: "2001:db8:1::1", bfd: {peer: "fe80::1%wan2"}}
`, `bad.yaml:3:71: links[0].bfd.peer: zone "wan2" is not the link's interface "wan1"`},
		{"link bfd local family", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    bfd: {local: "2001:db8:1::2"}
`, `bad.yaml:6:18: links[0].bfd.local: 2001:db8:1::2 is not of the peer's family (198.51.100.1)`},
		{"link bfd multiplier", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    bfd: {multiplier: 256}
`, `bad.yaml:6:23: links[0].bfd.multiplier: must be 1..255, got 256`},
		{"link bfd interval", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    bfd: {min_tx: 100ms, min_rx: 500us}
`, `bad.yaml:6:34: links[0].bfd.min_rx: must be 1ms..1h11m35s, got 500µs`},
		{"link bfd and bgp neighbour bfd to one peer, other timers", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    address4: 198.51.100.2
    bfd: {min_tx: 100ms}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: a, address: 198.51.100.1, asn: 64501, bfd: {}}
`, `bad.yaml:7:19: links[0].bfd.min_tx: 100ms differs from bgp.neighbors[0].bfd.min_tx (300ms by default, bad.yaml:12): links[0].bfd and bgp.neighbors[0].bfd are one BFD session to 198.51.100.1 on link a; give both the same min_tx (hold_up may differ)`},
		{"link bfd and bgp neighbour bfd to one peer, other multiplier", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    address4: 198.51.100.2
    bfd: {hold_up: 1s}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - link: a
      address: 198.51.100.1
      asn: 64501
      bfd: {multiplier: 5, hold_up: 3s}
`, `bad.yaml:7:10: links[0].bfd.multiplier: 3 by default differs from bgp.neighbors[0].bfd.multiplier (5, bad.yaml:15): links[0].bfd and bgp.neighbors[0].bfd are one BFD session to 198.51.100.1 on link a; give both the same multiplier (hold_up may differ)`},
		{"link bfd and bgp neighbour bfd to one peer, other local address", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    address4: 198.51.100.2
    bfd: {local: 198.51.100.3}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: a, address: 198.51.100.1, asn: 64501, bfd: {}}
`, `bad.yaml:7:18: links[0].bfd.local: 198.51.100.3 differs from bgp.neighbors[0].local_address (198.51.100.2 by default, bad.yaml:12): links[0].bfd and bgp.neighbors[0].bfd are one BFD session to 198.51.100.1 on link a; give both the same local address (hold_up may differ)`},
		{"link bfd and bgp neighbour bfd to one peer, invalid multiplier reported once", `
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    bfd: {multiplier: 300}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: a, address: 198.51.100.1, asn: 64501, bfd: {}}
`, `bad.yaml:6:23: links[0].bfd.multiplier: must be 1..255, got 300`},
		// end of links[].bfd rows.
		// ipv6.prefixes dhcpv6_pd rows (engineer D).
		{"ipv6 prefix and dhcpv6_pd", pdLinks + "    - {link: isp1, prefix: \"2001:db8:1:100::/64\", dhcpv6_pd: {length: 56}}\n", `bad.yaml:6:62: ipv6.prefixes[0].dhcpv6_pd: prefix and dhcpv6_pd are exclusive: a prefix is either configured or learned`},
		{"ipv6 dhcpv6_pd length", pdLinks + "    - {link: isp1, dhcpv6_pd: {length: 65}}\n", `bad.yaml:6:40: ipv6.prefixes[0].dhcpv6_pd.length: 65: want 1..64 (the delegated prefix holds the LAN /64s)`},
		{"ipv6 dhcpv6_pd subnet does not fit", pdLinks + "    - {link: isp1, dhcpv6_pd: {length: 60, subnet: 16}}\n", `bad.yaml:6:52: ipv6.prefixes[0].dhcpv6_pd.subnet: 16 does not fit in a /60: want 0..15`},
		{"ipv6 dhcpv6_pd negative subnet", pdLinks + "    - {link: isp1, dhcpv6_pd: {subnet: -1}}\n", `bad.yaml:6:40: ipv6.prefixes[0].dhcpv6_pd.subnet: -1 does not fit in a /56: want 0..255`},
		{"ipv6 dhcpv6_pd two lengths on one link", pdLinks + "    - {link: isp1, dhcpv6_pd: {length: 56}}\n    - {link: isp1, dhcpv6_pd: {length: 60, subnet: 1}}\n", `bad.yaml:7:40: ipv6.prefixes[1].dhcpv6_pd.length: 60 differs from ipv6.prefixes[0] (/56): a link holds one delegation`},
		{"ipv6 dhcpv6_pd one subnet twice", pdLinks + "    - {link: isp1, dhcpv6_pd: {subnet: 3}}\n    - {link: isp1, dhcpv6_pd: {subnet: 3}}\n", `bad.yaml:7:40: ipv6.prefixes[1].dhcpv6_pd.subnet: 3 is already used by ipv6.prefixes[0]`},
		{"ipv6 dhcpv6_pd rapid_commit differs on one link", pdLinks + "    - {link: isp1, dhcpv6_pd: {rapid_commit: true}}\n    - {link: isp1, dhcpv6_pd: {subnet: 1}}\n", `bad.yaml:7:31: ipv6.prefixes[1].dhcpv6_pd.rapid_commit: false differs from ipv6.prefixes[0]: a link holds one delegation`},
		{"ipv6 state_dir relative", pdLinks + "    - {link: isp1, dhcpv6_pd: {}}\n  state_dir: var/lib\n", `bad.yaml:7:14: ipv6.state_dir: "var/lib" must be an absolute path`},
		{"ipv6 dhcpv6_pd unknown field", pdLinks + "    - {link: isp1, dhcpv6_pd: {lenght: 56}}\n", `bad.yaml:6:32: ipv6.prefixes[0].dhcpv6_pd.lenght: unknown field "lenght" (did you mean "length"?)`},
		// end of dhcpv6_pd rows.
		// ipv6.firewall_sets rows (engineer E).
		{"ipv6 firewall set family", pdLinks + fwPrefix + "    - {family: ip, table: filter, set: lan6}\n", `bad.yaml:8:16: ipv6.firewall_sets[0].family: unknown value "ip": want inet, ip6`},
		{"ipv6 firewall set without table", pdLinks + fwPrefix + "    - {set: lan6}\n", `bad.yaml:8:7: ipv6.firewall_sets[0].table: missing: the name of the operator's nftables table, e.g. filter`},
		{"ipv6 firewall set bad name", pdLinks + fwPrefix + "    - {table: filter, set: \"lan 6\"}\n", `bad.yaml:8:28: ipv6.firewall_sets[0].set: "lan 6" is not an nftables name: want a letter or _ then letters, digits, _ . or -`},
		{"ipv6 firewall set unknown link", pdLinks + fwPrefix + "    - {table: filter, set: lan6, links: [isp1, isp9]}\n", `bad.yaml:8:48: ipv6.firewall_sets[0].links[1]: unknown link "isp9"`},
		{"ipv6 firewall set link without prefixes", "links:\n  - {name: isp1, interface: wan1, gateway6: \"2001:db8:1::1\"}\n  - {name: lte, interface: wan3, gateway4: 198.51.100.33}\nipv6:\n  lan: lan0\n  prefixes:\n" + fwPrefix + "    - {table: filter, set: lan6, links: [lte]}\n", `bad.yaml:9:42: ipv6.firewall_sets[0].links[0]: link lte has no ipv6.prefixes entry: the set would hold none of its prefixes`},
		{"ipv6 firewall set link twice", pdLinks + fwPrefix + "    - {table: filter, set: lan6, links: [isp1, isp1]}\n", `bad.yaml:8:48: ipv6.firewall_sets[0].links[1]: link isp1 is listed twice`},
		{"ipv6 firewall set twice", pdLinks + fwPrefix + "    - {table: filter, set: lan6}\n    - {family: inet, table: filter, set: lan6}\n", `bad.yaml:9:42: ipv6.firewall_sets[1].set: inet filter lan6 is also ipv6.firewall_sets[0]: list each set once, with all its links`},
		{"ipv6 firewall set unknown field", pdLinks + fwPrefix + "    - {tabel: filter, set: lan6}\n", `bad.yaml:8:8: ipv6.firewall_sets[0].tabel: unknown field "tabel" (did you mean "table"?)`},
		// end of firewall_sets rows.
		// links[].resolvers rows (engineer G).
		{"resolver on loopback", "links:\n  - {name: a, interface: wan1, gateway4: 198.51.100.1, resolvers: [198.51.100.53, 127.0.0.53]}\n",
			`bad.yaml:2:83: links[0].resolvers[1]: 127.0.0.53: a resolver reached through wan1 cannot be on loopback`},
		{"resolver link-local without zone", "links:\n  - {name: a, interface: wan1, gateway6: \"2001:db8:1::1\", resolvers: [\"fe80::53\"]}\n",
			`bad.yaml:2:71: links[0].resolvers[0]: fe80::53 is link-local: give its zone, the link's interface (fe80::53%wan1)`},
		{"resolver link-local other zone", "links:\n  - {name: a, interface: wan1, gateway6: \"2001:db8:1::1\", resolvers: [\"fe80::53%wan2\"]}\n",
			`bad.yaml:2:71: links[0].resolvers[0]: zone "wan2" is not the link's interface "wan1"`},
		{"resolver bad port", "links:\n  - {name: a, interface: wan1, gateway4: 198.51.100.1, resolvers: [\"198.51.100.53:0\"]}\n",
			`bad.yaml:2:68: links[0].resolvers[0]: bad port "0" in "198.51.100.53:0"`},
		{"resolver not an address", "links:\n  - {name: a, interface: wan1, gateway4: 198.51.100.1, resolvers: [dns.example]}\n",
			`bad.yaml:2:68: links[0].resolvers[0]: "dns.example" is not an address or address:port`},
		{"resolver twice", "links:\n  - {name: a, interface: wan1, gateway4: 198.51.100.1, resolvers: [198.51.100.53, \"198.51.100.53:53\"]}\n",
			`bad.yaml:2:83: links[0].resolvers[1]: 198.51.100.53 is listed twice (also links[0].resolvers[0])`},
		{"default resolver on loopback", "defaults: {resolvers: [\"::1\"]}\nlinks:\n  - {name: a, interface: wan1, gateway4: 198.51.100.1}\n",
			`bad.yaml:1:24: defaults.resolvers[0]: ::1: a resolver reached through the link cannot be on loopback`},
		{"host-name probe without resolvers", `
links:
  - name: a
    interface: wan1
    probes:
      - {target: 203.0.113.10}
      - {type: https, target: 203.0.113.11}
      - {type: http, target: example.net, path: /health}
`, `bad.yaml:8:30: links[0].probes[2].target: example.net is a host name: give links[0].resolvers (the system resolver is not reached through the link)`},
		{"host-name probe with port without resolvers", "links:\n  - {name: a, interface: wan1, probes: [{type: https, target: \"web.example:8443\"}]}\n",
			`bad.yaml:2:63: links[0].probes[0].target: web.example is a host name: give links[0].resolvers (the system resolver is not reached through the link)`},
		// end of links[].resolvers rows.
		{"syntax", "links:\n  - name: a\n   interface: [\n", `bad.yaml:1:1: YAML syntax: did not find expected '-' indicator`},
		{"empty", "# nothing\n", `bad.yaml: empty config: at least one link is needed`},
		{"no links", "log: {level: info}\n", `bad.yaml: links: at least one link is needed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			if got := es[0].Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := Parse("x.yaml", []byte(`
links:
  - {name: a, interface: wan1, gateway4: 2001:db8::1}
  - {name: a, interface: wan2, gateway4: 198.51.100.17, weight: -1}
`))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

// TestExamples loads every example config shipped in the repository and
// every YAML block in the docs that starts with a "# multihome.yaml" line.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs found in ../examples")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	docs, _ := filepath.Glob("../docs/*.md")
	docs = append(docs, "../README.md")
	n := 0
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, block := range yamlBlocks(string(b)) {
			n++
			if _, err := Parse(f, []byte(block)); err != nil {
				t.Errorf("%s: YAML block %d: %v", f, i+1, err)
			}
		}
	}
	if n == 0 {
		t.Error("no '# multihome.yaml' blocks found in the docs")
	}
}

// yamlBlocks returns the ```yaml blocks whose first line is
// "# multihome.yaml": complete configs that must load.
func yamlBlocks(md string) []string {
	var out []string
	for _, part := range strings.Split(md, "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(block, "# multihome.yaml") {
			out = append(out, block)
		}
	}
	return out
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("links: [{name: a, interface: b, probes: [{type: tcp, target: '1.2.3.4:5'}]}]"))
	f.Add([]byte("links:\n  - &x {name: a}\n  - *x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err == nil && len(c.Links) == 0 {
			t.Fatal("valid config without links")
		}
	})
}

func TestRateString(t *testing.T) {
	for in, want := range map[string]string{"100Mbit": "100Mbit", "1.5gbit": "1.5Gbit", "800kbit": "800kbit", "1234": "1234bit", "2000": "2kbit", "7": "7bit"} {
		var r Rate
		if err := r.UnmarshalText([]byte(in)); err != nil {
			t.Fatal(err)
		}
		if r.String() != want {
			t.Errorf("%s → %s, want %s", in, r, want)
		}
	}
}
