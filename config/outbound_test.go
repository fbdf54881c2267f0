package config

import (
	"strings"
	"testing"
	"time"
)

func TestOutboundDefaults(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
  - {name: b, interface: wan2, gateway4: 198.51.100.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if len(o.Policies) != 1 || o.Policies[0].Name != "default" || o.Policies[0].Type != PolicyWeighted ||
		strings.Join(o.Policies[0].Links, ",") != "a,b" || o.Policies[0].LastResort != LastResortMain {
		t.Errorf("default policy = %+v", o.Policies)
	}
	if o.DefaultPolicy != "default" || o.TableBase != 31000 || o.RulePriority != 31000 || o.MarkMask != 0x00ff0000 ||
		!*o.FlushOnFailure || !*o.SNAT || o.NAT6 || o.KeepOnExit || o.Reconcile.D() != 5*time.Second {
		t.Errorf("defaults = %+v", o)
	}
	// EffectiveOutbound gives configs built in Go the same defaults.
	g := (&Config{Links: c.Links}).EffectiveOutbound()
	if g.DefaultPolicy != "default" || len(g.Policies) != 1 || g.MarkMask != DefaultMarkMask {
		t.Errorf("EffectiveOutbound = %+v", g)
	}
}

func TestOutboundParse(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
  - {name: b, interface: wan2, gateway4: 198.51.100.5}
outbound:
  flush_on_failure: false
  mark_mask: 0xf000
  policies:
    - {name: s, type: sticky, links: [b]}
    - {name: main, type: failover, spillover: 80%, last_resort: unreachable}
  rules:
    - {src: [192.0.2.0/25], proto: tcp, dport: "80,443,8000-8080", dscp: 10, policy: s, migrate_on_recovery: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Outbound
	if *o.FlushOnFailure || o.MarkMask != 0xf000 || o.DefaultPolicy != "s" {
		t.Errorf("outbound = %+v", o)
	}
	if p := o.Policies[0]; p.StickyTimeout != DefaultStickyTimeout || p.StickySize != DefaultStickySize || strings.Join(p.Links, ",") != "b" {
		t.Errorf("sticky policy = %+v", p)
	}
	if p := o.Policies[1]; p.Spillover != 0.8 || p.LastResort != LastResortUnreachable {
		t.Errorf("failover policy = %+v", p)
	}
	r := o.Rules[0]
	if r.Name != "rule0" || r.DPort.String() != "{ 80, 443, 8000-8080 }" || *r.DSCP != 10 || !r.MigrateOnRecovery || r.Src[0].String() != "192.0.2.0/25" {
		t.Errorf("rule = %+v", r)
	}
}

func TestOutboundErrors(t *testing.T) {
	base := `links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
  - {name: b, interface: wan2, gateway4: 198.51.100.5}
`
	for _, tc := range []struct{ yaml, want string }{
		{"outbound:\n  rules:\n    - {policy: nope}\n", `outbound.rules[0].policy: unknown policy "nope"`},
		{"outbound:\n  policies:\n    - {name: p, links: [a, c]}\n", `outbound.policies[0].links[1]: unknown link "c"`},
		{"outbound:\n  policies:\n    - {name: p, type: random}\n", `unknown policy type "random"`},
		{"outbound:\n  policies:\n    - {name: p, last_resort: drop}\n", `unknown last resort "drop"`},
		{"outbound:\n  policies:\n    - {name: p, sticky_timeout: 5m}\n", `only for type sticky`},
		{"outbound:\n  policies:\n    - {name: p, sticky_size: 100}\n", `outbound.policies[0].sticky_size: only for type sticky`},
		{"outbound:\n  policies:\n    - {name: p, type: sticky, sticky_size: -1}\n", `outbound.policies[0].sticky_size: -1 out of range: 1 to 16777216`},
		{"outbound:\n  policies:\n    - {name: p, type: sticky, sticky_size: 16777217}\n", `sticky_size: 16777217 out of range`},
		{"outbound:\n  default_policy: x\n", `outbound.default_policy: unknown policy "x"`},
		{"outbound:\n  rules:\n    - {policy: default, dport: 0}\n", `bad port or range "0"`},
		{"outbound:\n  rules:\n    - {policy: default, proto: icmp, dport: 80}\n", `ports need proto tcp or udp`},
		{"outbound:\n  rules:\n    - {policy: default, src: [192.0.2.0/24, 2001:db8::/32]}\n", `mixes IPv4 and IPv6`},
		{"outbound:\n  rules:\n    - {policy: default, dscp: 64}\n", `64 is not a DSCP value`},
		{"outbound:\n  mark_mask: 0x101\n", `not one run of contiguous bits`},
		{"outbound:\n  mark_mask: 0x1\n", `has room for 0 links, the config has 2`},
		{"outbound:\n  table_base: 200\n", `must not include 253`},
		{"outbound:\n  rule_priority: 32500\n", `must be within 1`},
	} {
		_, err := Parse("x.yaml", []byte(base+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
	// Positions point at the field.
	_, err := Parse("x.yaml", []byte(base+"outbound:\n  rules:\n    - policy: nope\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:6:") {
		t.Errorf("want a position on line 6, got %v", err)
	}
}
