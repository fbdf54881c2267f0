package outbound

import (
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// TestRenderMPTCP: with an mptcp section the output chain lets the
// machine's MPTCP joins through unsteered, and new MPTCP connections too
// unless their route leads to a link that takes no new flows: those are
// steered (a link down, a drained one; not one not judged yet). Without
// the section the ruleset does not mention MPTCP.
func TestRenderMPTCP(t *testing.T) {
	const links = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18}
`
	st := func(s1 monitor.State, a1 monitor.Admin, s2 monitor.State) []monitor.Status {
		return []monitor.Status{{Link: "isp1", State: s1, Admin: a1}, {Link: "isp2", State: s2}}
	}
	const join = `tcp option mptcp subtype 1 return`
	const steerWan1 = `tcp option mptcp subtype 0 oifname { "wan1" } goto steer`
	const rest = `tcp option mptcp exists return`
	for _, c := range []struct {
		name     string
		yaml     string
		statuses []monitor.Status
		want     []string // in this order, before "goto steer"
		not      []string
	}{
		{"no mptcp section", links, nil, nil, []string{"mptcp"}},
		{"not judged yet", links + "mptcp: {}\n", nil, []string{join, rest}, []string{"subtype 0"}},
		{"both up", links + "mptcp: {}\n", st(monitor.Up, monitor.AdminNone, monitor.Up), []string{join, rest}, []string{"subtype 0"}},
		{"isp1 down", links + "mptcp: {}\n", st(monitor.Down, monitor.AdminNone, monitor.Up), []string{join, steerWan1, rest}, nil},
		{"isp1 drained", links + "mptcp: {}\n", st(monitor.Up, monitor.AdminDrain, monitor.Up), []string{join, steerWan1, rest}, nil},
		{"isp1 degraded", links + "mptcp: {}\n", st(monitor.Degraded, monitor.AdminNone, monitor.Up), []string{join, rest}, []string{"subtype 0"}},
	} {
		cfg, err := config.Parse("test.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		text, err := Render(cfg, c.statuses)
		if err != nil {
			t.Fatal(err)
		}
		out := text[strings.Index(text, "chain output"):]
		out = out[:strings.Index(out, "\n\t}")]
		at := 0
		for _, w := range c.want {
			i := strings.Index(out[at:], w)
			if i < 0 {
				t.Errorf("%s: output chain lacks %q after what came before:\n%s", c.name, w, out)
				break
			}
			at += i + len(w)
		}
		if len(c.want) > 0 && at > strings.LastIndex(out, "goto steer") { // the chain's last rule
			t.Errorf("%s: MPTCP rules after steering:\n%s", c.name, out)
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: output chain has %q:\n%s", c.name, n, out)
			}
		}
		if len(c.want) > 0 && !strings.Contains(text, "from 198.51.100.18/32 lookup 31001") {
			t.Errorf("%s: no source rule for isp2:\n%s", c.name, text)
		}
	}
}

// TestRenderBond: a bond policy marks its TCP flows for the proxy and
// sends the rest to its fallback; the NAT chain redirects the marked
// ones to the proxy's port.
func TestRenderBond(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
mptcp: {}
bond: {aggregator: 203.0.113.80:7400, key: 0123456789abcdef, port: 7555}
outbound:
  policies:
    - {name: default, type: weighted}
    - {name: bonded, type: bond}
  rules:
    - {name: bulk, dst: [203.0.113.0/24], policy: bonded}
`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ip daddr 203.0.113.0/24 goto pol1 comment "rule bulk"`,
		`meta l4proto tcp ct mark set ct mark & 0xff00ffff | 0x00fe0000 accept comment "bonded: to the proxy"`,
		`goto pol0 comment "not TCP: fallback policy default"`,
		"type nat hook prerouting priority dstnat; policy accept;",
		`ct mark & 0x00ff0000 == 0x00fe0000 meta l4proto tcp redirect to :7555`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, text)
		}
	}
	if BondMark(0x00ff0000) != 0x00fe0000 || BondMark(0xf0) != 0xe0 {
		t.Errorf("BondMark: %#x %#x", BondMark(0x00ff0000), BondMark(0xf0))
	}
}
