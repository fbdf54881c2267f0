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
