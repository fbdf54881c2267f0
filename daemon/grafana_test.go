package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/metrics"
)

// recorder is a Registerer that keeps what subsystems register.
type recorder struct{ cols []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cols = append(r.cols, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cols = append(r.cols, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return true }

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exported returns every metric the daemon can export, with its labels:
// the API's link and reload collectors, and every subsystem's collectors
// as the daemon's builders register them, for each complete config in
// the docs (so that dns, bgp, bfd, ipv6, mptcp sections are all built).
func exported(t *testing.T) map[string][]string {
	t.Helper()
	rec := &recorder{}
	src := &fakeSource{}
	rec.MustRegister(metrics.NewLinks(src), metrics.NewReloads())
	docs, _ := filepath.Glob("../docs/*.md")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	built := map[string]bool{}
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
			block, _, _ := strings.Cut(part, "```")
			if !strings.HasPrefix(block, "# multihome.yaml") {
				continue
			}
			cfg, err := config.Parse(f, []byte(block))
			if err != nil {
				continue // config.TestExamples reports it
			}
			for _, bl := range builders {
				s, err := bl.build(cfg, src, rec, log)
				if err == nil && s != nil {
					built[bl.name] = true
				}
			}
		}
	}
	out := map[string][]string{}
	for _, c := range rec.cols {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			out[m[1]] = labels
		}
	}
	for _, want := range []string{"outbound", "dns", "bgp"} {
		if !built[want] {
			t.Errorf("no docs config built the %s subsystem: its metrics are not checked", want)
		}
	}
	return out
}

// TestGrafanaDashboard checks that every PromQL expression of
// dist/grafana/multihome.json (panels, template variables, annotations)
// names only metrics the daemon exports, with labels they have.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../dist/grafana/multihome.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Type    string `json:"type"`
			GridPos struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr   string `json:"expr"`
				Legend string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	have := exported(t)
	n := 0
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, g)
		}
		if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${datasource}") {
			t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
		}
		for _, tg := range p.Targets {
			n++
			for _, e := range checkPromQL(tg.Expr, tg.Legend, have) {
				t.Errorf("panel %q: %s", p.Title, e)
			}
		}
	}
	for _, v := range dash.Templating.List {
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			n++
			for _, e := range checkPromQL(q.Query, "", have) {
				t.Errorf("variable %s: %s", v.Name, e)
			}
		}
	}
	for _, a := range dash.Annotations.List {
		n++
		for _, e := range checkPromQL(a.Expr, "", have) {
			t.Errorf("annotation %q: %s", a.Name, e)
		}
	}
	if n < 20 {
		t.Errorf("only %d expressions found: is the dashboard's layout still read right?", n)
	}
	// The checker itself: each of these must be refused.
	for _, bad := range []string{`multihome_link_bogus`, `multihome_link_rtt_seconds{linc="a"}`, `sum by (nope) (multihome_link_loss_ratio)`, `up`} {
		if len(checkPromQL(bad, "", have)) == 0 {
			t.Errorf("checker accepts %q", bad)
		}
	}
	if len(checkPromQL(`multihome_link_loss_ratio`, "{{lnk}}", have)) == 0 {
		t.Error("checker accepts a legend with an unknown label")
	}
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promSelector = regexp.MustCompile(`(multihome_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promLegend   = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	promLabelFn  = regexp.MustCompile(`label_values\(\s*(multihome_[a-zA-Z0-9_]+)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// checkPromQL reads the metric names, label matchers, grouping labels
// and legend labels of one expression and returns what does not exist.
// Strings and range durations are removed first, so that label values
// and Grafana's $__rate_interval cannot be mistaken for names.
func checkPromQL(expr, legend string, have map[string][]string) []string {
	var errs []string
	// label_values(metric, label) is Grafana's, not PromQL: check and drop it.
	for _, m := range promLabelFn.FindAllStringSubmatch(expr, -1) {
		if l, ok := have[m[1]]; !ok || !slices.Contains(l, m[2]) {
			errs = append(errs, fmt.Sprintf("label_values(%s, %s): no such metric or label", m[1], m[2]))
		}
	}
	e := promLabelFn.ReplaceAllString(expr, "")
	e = promRanges.ReplaceAllString(promStrings.ReplaceAllString(e, `""`), "")
	labels := map[string]bool{}
	found := 0
	for _, m := range promSelector.FindAllStringSubmatch(e, -1) {
		name := m[1]
		l, ok := have[name]
		if !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suf); cut {
					if l, ok = have[base]; ok && suf == "_bucket" {
						l = append(slices.Clone(l), "le")
					}
					break
				}
			}
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: the exporter has no such metric", name))
			continue
		}
		found++
		for _, x := range l {
			labels[x] = true
		}
		for _, mm := range promMatcher.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(l, mm[1]) {
				errs = append(errs, fmt.Sprintf("%s has no label %q (it has %v)", name, mm[1], l))
			}
		}
	}
	if found == 0 && len(promLabelFn.FindAllString(expr, -1)) == 0 {
		errs = append(errs, fmt.Sprintf("%q queries no multihome metric", expr))
	}
	for _, g := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				errs = append(errs, fmt.Sprintf("%s (%s): no metric of the expression has label %q", g[1], g[2], l))
			}
		}
	}
	for _, m := range promLegend.FindAllStringSubmatch(legend, -1) {
		if !labels[m[1]] {
			errs = append(errs, fmt.Sprintf("legend {{%s}}: no metric of the expression has that label", m[1]))
		}
	}
	return errs
}
