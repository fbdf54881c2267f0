package outbound

import (
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
)

// TestRenderMPTCP: with an mptcp section the output chain lets the
// machine's MPTCP SYNs through unsteered, before steering; without, the
// ruleset does not mention MPTCP.
func TestRenderMPTCP(t *testing.T) {
	const links = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18}
`
	for _, c := range []struct {
		yaml string
		want bool
	}{{links, false}, {links + "mptcp: {}\n", true}} {
		cfg, err := config.Parse("test.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		text, err := Render(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := text[strings.Index(text, "chain output"):]
		out = out[:strings.Index(out, "\n\t}")]
		i := strings.Index(out, `tcp option mptcp exists return`)
		if (i >= 0) != c.want || c.want && i > strings.Index(out, "goto steer") {
			t.Errorf("mptcp %v: output chain\n%s", c.want, out)
		}
		if c.want && !strings.Contains(text, "from 198.51.100.18/32 lookup 31001") {
			t.Errorf("no source rule for isp2:\n%s", text)
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
