package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const bondLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
`

func TestBondErrors(t *testing.T) {
	ok := bondLinks + "mptcp: {}\nbond: {aggregator: 203.0.113.80:7400, key: 0123456789abcdef}\n"
	for _, c := range []struct{ yaml, want string }{
		{bondLinks + "outbound: {policies: [{name: default}, {name: b, type: bond}]}\n", "a bond policy needs the bond section"},
		{bondLinks + "bond: {aggregator: 203.0.113.80:7400, key: 0123456789abcdef}\noutbound: {policies: [{name: default}, {name: b, type: bond}]}\n", "a bond policy needs the mptcp section"},
		{ok + "outbound: {policies: [{name: default}, {name: b, type: bond, fallback: nope}]}\n", `fallback: unknown policy "nope"`},
		{ok + "outbound: {policies: [{name: default}, {name: b, type: bond}, {name: c, type: bond, fallback: b}]}\n", "is a bond policy"},
		{ok + "outbound: {policies: [{name: default, type: bond}]}\n", "the default policy cannot be a bond policy"},
		{ok + "outbound: {policies: [{name: default, fallback: default}]}\n", "fallback: only for type bond"},
		{bondLinks + "bond: {aggregator: 203.0.113.80:7400, key: short}\n", "bond.key: too short"},
		{bondLinks + "bond: {key: 0123456789abcdef}\n", "bond.aggregator: missing"},
		{bondLinks + "bond: {aggregator: 203.0.113.80:7400, key_file: /nonexistent/bond.key}\n", "bond.key_file"},
	} {
		_, err := Parse("test.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
	c, err := Parse("test.yaml", []byte(ok+"outbound: {policies: [{name: default}, {name: b, type: bond}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Outbound.Policies[1].Fallback != "default" || c.Bond.Port != DefaultBondPort {
		t.Errorf("defaults: fallback %q port %d", c.Outbound.Policies[1].Fallback, c.Bond.Port)
	}
}

func TestAggregateConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bond.key"), []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ParseAggregate(filepath.Join(dir, "aggregate.yaml"), []byte("aggregate: {key_file: bond.key}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := f.AggregateKey(); err != nil || string(k) != "0123456789abcdef0123" {
		t.Errorf("key %q, %v", k, err)
	}
	if f.Aggregate.Listen != "[::]:7400" || *f.Aggregate.Subflows != 8 {
		t.Errorf("defaults: %+v", f.Aggregate)
	}
	for _, c := range []struct{ yaml, want string }{
		{"aggregate: {key: 0123456789abcdef, listen: nowhere}", `aggregate.listen: "nowhere" is not ADDRESS:PORT`},
		{"aggregate: {key: 0123456789abcdef, header_timeout: 1ms}", "aggregate.header_timeout: must be at least 100ms"},
		{"aggregate: {}", "aggregate.key: missing"},
		{"aggregate: {key: 0123456789abcdef, lsten: x}", `test.yaml:1:`},
	} {
		_, err := ParseAggregate("test.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
	// The docs' aggregator examples load.
	b, err := os.ReadFile("../docs/mptcp.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.HasPrefix(block, "# aggregate.yaml") {
			n++
			block = strings.Replace(block, "key_file: bond.key", "key: 0123456789abcdef", 1)
			if _, err := ParseAggregate("docs/mptcp.md", []byte(block)); err != nil {
				t.Errorf("docs/mptcp.md aggregate example: %v", err)
			}
		}
	}
	if n == 0 {
		t.Error("no aggregate.yaml example in docs/mptcp.md")
	}
}
