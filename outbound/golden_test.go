package outbound

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(path, b)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// states builds statuses: every link up except those named in mod.
func states(cfg *config.Config, mod map[string]func(*monitor.Status)) []monitor.Status {
	var out []monitor.Status
	for _, l := range cfg.Links {
		s := monitor.Status{Link: l.Name, Interface: l.Interface, State: monitor.Up, Health: monitor.Up, Carrier: true}
		if f := mod[l.Name]; f != nil {
			f(&s)
		}
		out = append(out, s)
	}
	return out
}

func unknown(s *monitor.Status) { s.State, s.Health = monitor.Unknown, monitor.Unknown }

func down(s *monitor.Status) { s.State, s.Health, s.Carrier = monitor.Down, monitor.Down, false }

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./outbound -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./outbound -run Golden -update):\n--- got\n%s", path, got)
	}
}

func TestRenderGolden(t *testing.T) {
	saturated := func(s *monitor.Status) { s.Saturated, s.UtilUp = true, 0.93 }
	for _, tc := range []struct {
		name, file string
		mod        map[string]func(*monitor.Status)
		nilStatus  bool
	}{
		{name: "default", file: "default.yaml", nilStatus: true},
		{name: "default-isp1-down", file: "default.yaml", mod: map[string]func(*monitor.Status){"isp1": down}},
		{name: "rules", file: "rules.yaml"},
		{name: "rules-isp2-down-isp1-saturated", file: "rules.yaml", mod: map[string]func(*monitor.Status){"isp2": down, "isp1": saturated}},
		{name: "rules-all-down", file: "rules.yaml", mod: map[string]func(*monitor.Status){"isp1": down, "isp2": down, "lte": down}},
		{name: "rules-isp1-draining-holddown", file: "rules.yaml", mod: map[string]func(*monitor.Status){
			"isp1": func(s *monitor.Status) { s.Admin = monitor.AdminDrain },
			"isp2": func(s *monitor.Status) { s.State, s.HoldDown = monitor.Down, true },
		}},
		{name: "nat6", file: "nat6.yaml", nilStatus: true},
		{name: "rules-start-unknown", file: "rules.yaml", mod: map[string]func(*monitor.Status){
			"isp1": unknown, "isp2": unknown, "lte": unknown,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, filepath.Join("testdata", tc.file))
			var st []monitor.Status
			if !tc.nilStatus {
				st = states(cfg, tc.mod)
			}
			got, err := Render(cfg, st)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, got)
			nftCheck(t, got)
		})
	}
}

// nftCheck has nft parse and check the ruleset part of a rendering (nft
// -c: nothing is applied), inside a throwaway namespace; skipped when not
// root.
func nftCheck(t *testing.T, rendered string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	ruleset, _, _ := strings.Cut(rendered, "\n# ip rules and routes")
	name := netns.Unique("mhgold", "")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	defer netns.Delete(name)
	cmd := netns.Command(context.Background(), name, "nft", "-c", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -c rejects the ruleset: %v\n%s", err, out)
	}
}

// TestDocExamples loads every config example in docs/outbound.md (blocks
// that start with "# multihome.yaml") and renders it.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/outbound.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(# multihome.yaml.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d examples in docs/outbound.md, want at least 3", len(blocks))
	}
	for i, m := range blocks {
		cfg, err := config.Parse("docs/outbound.md example", []byte(m[1]))
		if err != nil {
			t.Errorf("example %d: %v\n%s", i, err, m[1])
			continue
		}
		if _, err := Render(cfg, nil); err != nil {
			t.Errorf("example %d: render: %v", i, err)
		}
		if !strings.Contains(m[1], "links:") {
			t.Errorf("example %d has no links", i)
		}
	}
}

// TestDecideAvoidsDegraded: new flows leave a degraded member alone while
// another member is fully up, use it when it is the only one left, and
// use it anyway under degraded: use.
func TestDecideAvoidsDegraded(t *testing.T) {
	cfg := loadConfig(t, filepath.Join("testdata", "rules.yaml"))
	p := config.OutboundPolicy{Name: "p", Type: config.PolicyWeighted, Links: []string{"isp1", "isp2"}, Degraded: "avoid", LastResort: config.LastResortMain}
	byName := map[string]int{"isp1": 0, "isp2": 1}
	views := func(s1, s2 monitor.State) []linkView {
		st := []monitor.Status{{Link: "isp1", State: s1}, {Link: "isp2", State: s2}}
		return viewsFor(cfg, st, nil)
	}
	members := func(c choice) []int {
		var out []int
		for _, m := range c.members {
			out = append(out, m.idx)
		}
		return out
	}
	if got := members(decide(p, views(monitor.Up, monitor.Degraded), byName)); !slices.Equal(got, []int{0}) {
		t.Errorf("up + degraded: members %v, want only isp1", got)
	}
	if c := decide(p, views(monitor.Up, monitor.Degraded), byName); !strings.Contains(c.why, "avoiding degraded: isp2") {
		t.Errorf("decision does not say why: %q", c.why)
	}
	if got := members(decide(p, views(monitor.Down, monitor.Degraded), byName)); !slices.Equal(got, []int{1}) {
		t.Errorf("down + degraded: members %v, want isp2", got)
	}
	p.Degraded = "use"
	if got := members(decide(p, views(monitor.Up, monitor.Degraded), byName)); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("degraded: use: members %v, want both", got)
	}
}
