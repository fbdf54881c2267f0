package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const dnsLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
`

func TestDNSDefaults(t *testing.T) {
	c, err := Parse("dns.yaml", []byte(dnsLinks+`
dns:
  listen: ["198.51.100.2:53"]
  keys: [{name: upd, secret: "c2VjcmV0"}]
  zones:
    - name: Example.COM
      records: ["@ NS ns1", "ns1 A 198.51.100.2"]
      names:
        - name: www
          records: [{link: isp1, a: self}, {link: isp2, a: 198.51.100.18}]
    - name: example.net
      push: {server: "192.0.2.53:53", key: upd}
      names: [{name: "shop.example.net.", records: [{link: isp2, aaaa: "2001:db8:2::5"}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DNS
	if d.UDPSize != 1232 || d.TCPIdle.D() != 10*time.Second || d.RRL.Rate != 50 || d.RRL.Burst != 100 || d.RRL.Slip != 2 ||
		d.RRL.IPv4Prefix != 24 || d.RRL.IPv6Prefix != 56 {
		t.Errorf("server defaults: %+v", d)
	}
	if d.Keys[0].Name != "upd." || d.Keys[0].Algorithm != "hmac-sha256" {
		t.Errorf("key: %+v", d.Keys[0])
	}
	z := d.Zones[0]
	if z.Name != "example.com." || z.Mode != DNSModeServe || z.TTL.D() != time.Hour || z.SOA.Minimum.D() != 30*time.Second {
		t.Errorf("zone defaults: %+v", z)
	}
	n := z.Names[0]
	if n.TTL.D() != 30*time.Second || n.MinTTL.D() != 5*time.Second || n.Policy != DNSPolicyAll || n.Count != 1 ||
		n.Degraded != DNSDemote || n.Saturated != DNSDemote || n.AllDown != DNSAllDownAll {
		t.Errorf("name defaults: %+v", n)
	}
	if !n.Records[0].A.Self || n.Records[0].A.Resolve(c.LinkByName("isp1"), 4) != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("a: self = %+v", n.Records[0].A)
	}
	p := d.Zones[1]
	if p.Mode != DNSModeBoth || p.Push.Zone != "example.net." || p.Push.Key != "upd." || p.Push.Verify.D() != time.Minute ||
		p.Push.RetryMin.D() != 500*time.Millisecond {
		t.Errorf("push defaults: mode %s %+v", p.Mode, p.Push)
	}
}

func TestDNSSlipZero(t *testing.T) {
	c, err := Parse("dns.yaml", []byte(dnsLinks+`
dns:
  rrl: {slip: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.RRL.Slip != 0 {
		t.Errorf("slip: 0 written, got %d", c.DNS.RRL.Slip)
	}
}

func TestDNSBadConfigs(t *testing.T) {
	zone := func(s string) string {
		return dnsLinks + `
dns:
  listen: ["198.51.100.2:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1"]
` + s
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown link", zone(`      names:
        - name: www
          records: [{link: isp9, a: 192.0.2.1}]
`), `bad.yaml:13:28: dns.zones[0].names[0].records[0].link: unknown link "isp9"`},
		{"A not IPv4", zone(`      names:
        - name: www
          records: [{link: isp1, a: "2001:db8::1"}]
`), `bad.yaml:13:37: dns.zones[0].names[0].records[0].a: 2001:db8::1 is not an IPv4 address`},
		{"bad address", zone(`      names:
        - name: www
          records: [{link: isp1, a: myself}]
`), `bad.yaml:13:37: dns.zones[0].names[0].records[0].a: bad address "myself": want an IP address or "self"`},
		{"no address", zone(`      names:
        - name: www
          records: [{link: isp1}]
`), `bad.yaml:13:21: dns.zones[0].names[0].records[0]: give a, aaaa or both`},
		{"bad policy", zone(`      names:
        - {name: www, policy: random, records: [{link: isp1, a: self}]}
`), `bad.yaml:12:31: dns.zones[0].names[0].policy: unknown value "random": want all, weighted, failover, first`},
		{"count with all", zone(`      names:
        - {name: www, count: 2, records: [{link: isp1, a: self}]}
`), `bad.yaml:12:30: dns.zones[0].names[0].count: count applies to the weighted and first policies, not all`},
		{"min_ttl above ttl", zone(`      names:
        - {name: www, ttl: 10s, min_ttl: 20s, records: [{link: isp1, a: self}]}
`), `bad.yaml:12:42: dns.zones[0].names[0].min_ttl: 20s is above ttl 10s`},
		{"name outside zone", zone(`      names:
        - {name: www.example.org., records: [{link: isp1, a: self}]}
`), `bad.yaml:12:18: dns.zones[0].names[0].name: www.example.org. is outside the zone example.com.`},
		{"duplicate name", zone(`      names:
        - {name: www, records: [{link: isp1, a: self}]}
        - {name: WWW.example.com., records: [{link: isp1, a: self}]}
`), `bad.yaml:13:18: dns.zones[0].names[1].name: duplicate name www.example.com. (also names[0])`},
		{"bad record", `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
dns:
  listen: ["198.51.100.2:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1", "@ MX mail"]
`, `bad.yaml:8:29: dns.zones[0].records[1]: dns: bad MX Pref: "mail" at line: 1:9`},
		{"record outside zone", zone(`      file: ""
`)[:0] + `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
dns:
  listen: ["198.51.100.2:53"]
  zones:
    - name: example.com
      records: ["www.example.org. A 192.0.2.1"]
`, `bad.yaml:8:17: dns.zones[0].records[0]: www.example.org. is outside the zone example.com.`},
		{"missing zone file", zone(`      file: /nonexistent/example.com.zone
`), `bad.yaml:11:13: dns.zones[0].file: open /nonexistent/example.com.zone: no such file or directory`},
		{"unknown key", zone(`      transfer: {allow: [192.0.2.0/24], key: nokey}
`), `bad.yaml:11:46: dns.zones[0].transfer.key: unknown key "nokey": define it under dns.keys`},
		{"bad secret", dnsLinks + `
dns:
  keys: [{name: k, secret: "not base64!"}]
`, `bad.yaml:7:28: dns.keys[0].secret: tsig key k.: secret is not base64`},
		{"push without server", dnsLinks + `
dns:
  zones:
    - {name: example.com, mode: push, push: {key: ""}}
`, `bad.yaml:8:45: dns.zones[0].push.server: missing: the primary's address and port, e.g. 192.0.2.53:53`},
		{"push mode without push", zone(`      mode: push
`), `bad.yaml:11:13: dns.zones[0].mode: mode push needs a push section`},
		{"no listen", dnsLinks + `
dns:
  zones: [{name: example.com, records: ["@ NS ns1"]}]
`, `bad.yaml:7:3: dns.listen: missing: the addresses to answer on, e.g. ["198.51.100.2:53"]`},
		{"listen without port", dnsLinks + `
dns:
  listen: ["198.51.100.2:0"]
`, `bad.yaml:7:12: dns.listen[0]: 198.51.100.2:0: give a port, e.g. 198.51.100.2:53`},
		{"duplicate zone", zone(`    - name: EXAMPLE.com.
      records: ["@ NS ns1"]
`), `bad.yaml:11:13: dns.zones[1].name: duplicate zone "example.com." (also dns.zones[0])`},
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
			for _, e := range es {
				if e.Error() == tc.want {
					return
				}
			}
			t.Errorf("got  %s\nwant %s", err, tc.want)
		})
	}
}

func TestAbsName(t *testing.T) {
	for _, c := range []struct{ in, origin, want string }{
		{"www", "example.com.", "www.example.com."},
		{"@", "example.com.", "example.com."},
		{"", "example.com.", "example.com."},
		{"WWW.Example.COM.", "example.com.", "www.example.com."},
		{"example.com", ".", "example.com."},
		{"a..b", ".", ""},
	} {
		got, ok := AbsName(c.in, c.origin)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("AbsName(%q, %q) = %q %v, want %q", c.in, c.origin, got, ok, c.want)
		}
	}
}

// FuzzDNSConfig runs the dns section's checks on arbitrary input: they
// must never panic.
func FuzzDNSConfig(f *testing.F) {
	f.Add(dnsLinks + "dns:\n  listen: [\"127.0.0.1:53\"]\n  zones: [{name: example.com, records: [\"@ NS ns1\", \"@ MX 10 mail\"], names: [{name: www, records: [{link: isp1, a: self}]}]}]\n")
	f.Add(dnsLinks + "dns:\n  keys: [{name: k, secret: c2VjcmV0}]\n  zones: [{name: x, mode: push, push: {server: \"192.0.2.1:53\", key: k, zone: y}}]\n")
	f.Add(dnsLinks + "dns:\n  rrl: {rate: -1, slip: 0, ipv4_prefix: 99}\n  zones: [{name: \"..\", names: [{name: \"\", policy: first, count: -3}]}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "file:") || strings.Contains(s, "secret_file") {
			return // no reading of arbitrary paths
		}
		Parse("fuzz.yaml", []byte(s))
	})
}
