package outbound

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/multihome/multihome/lab"
)

// newFlows returns the collector's values by "policy/link" ("policy/"
// for the last resort).
func newFlows(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out[l["policy"]+"/"+l["link"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestNewFlowsCollector: totals stay monotonic across a re-created
// counter and a removed table, unrelated counters are ignored, and
// scrapes within NewFlowsMaxAge share one read.
func TestNewFlowsCollector(t *testing.T) {
	var reads atomic.Int32
	var raw map[string]uint64
	var rerr error
	f := newNewFlowsCollector(func(context.Context) (map[string]uint64, error) {
		reads.Add(1)
		return raw, rerr
	})
	scrape := func() map[string]float64 {
		f.mu.Lock()
		f.at = time.Time{} // as if NewFlowsMaxAge had passed
		f.mu.Unlock()
		return newFlows(t, f)
	}
	raw = map[string]uint64{"new/default/isp1": 5, "new/default/isp2": 3, "last/default": 2, "other": 9, "new/x": 1}
	if got := fmt.Sprint(scrape()); got != "map[default/:2 default/isp1:5 default/isp2:3]" {
		t.Fatalf("first scrape %s", got)
	}
	raw = map[string]uint64{"new/default/isp1": 2, "new/default/isp2": 4} // isp1's counter re-created, the last resort's gone
	if got := fmt.Sprint(scrape()); got != "map[default/:2 default/isp1:7 default/isp2:4]" {
		t.Fatalf("after a reset %s, want isp1 5+2", got)
	}
	raw = map[string]uint64{} // table deleted
	if got := fmt.Sprint(scrape()); got != "map[default/:2 default/isp1:7 default/isp2:4]" {
		t.Fatalf("without the table %s, want the totals kept", got)
	}
	raw, rerr = map[string]uint64{"new/default/isp1": 1, "new/default/isp2": 0}, nil // back, from 0
	if got := fmt.Sprint(scrape()); got != "map[default/:2 default/isp1:8 default/isp2:4]" {
		t.Fatalf("table back %s", got)
	}
	raw, rerr = nil, errors.New("nft timed out")
	if got := fmt.Sprint(scrape()); got != "map[default/:2 default/isp1:8 default/isp2:4]" {
		t.Fatalf("failed read %s, want the last totals", got)
	}
	reads.Store(0)
	rerr = nil
	scrape()
	for range 4 {
		testutil.CollectAndCount(f)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("5 scrapes within %s made %d reads, want 1", NewFlowsMaxAge, n)
	}
}

// TestLabNewFlows: new connections from the LAN move the counters of
// the links they leave by, exactly, as the server sees them.
func TestLabNewFlows(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, `outbound:
  policies:
    - {name: spread, type: weighted}
    - {name: onlyb, type: weighted, links: [isp2]}
  rules:
    - {name: b, proto: tcp, dport: 443, policy: onlyb}
`)
	before := newFlows(t, e.c.newFlows)
	if len(before) != 5 {
		t.Fatalf("series before any flow: %v, want spread/isp1, spread/isp2, onlyb/isp2 and both last resorts", before)
	}
	seen := map[string]float64{}
	const n = 40
	for range n {
		switch e.mustVia("lan1") {
		case e.addr("isp1"):
			seen["spread/isp1"]++
		case e.addr("isp2"):
			seen["spread/isp2"]++
		}
	}
	if seen["spread/isp1"] == 0 || seen["spread/isp2"] == 0 {
		t.Fatalf("%d connections all left by one link: %v", n, seen)
	}
	time.Sleep(NewFlowsMaxAge) // the last reading is stale
	after := newFlows(t, e.c.newFlows)
	for _, k := range []string{"spread/isp1", "spread/isp2", "onlyb/isp2"} {
		if d := after[k] - before[k]; d != seen[k] {
			t.Errorf("%s: counter moved by %v, the server saw %v new flows by it (before %v, after %v)", k, d, seen[k], before, after)
		}
	}
	if !strings.Contains(fmt.Sprint(after), "onlyb/isp2:0") {
		t.Errorf("onlyb counted flows it never got: %v", after)
	}
}

// TestLabLastResortFlows: with every link down, new flows on the last
// resort move multihome_outbound_last_resort_flows_total, not the links'
// counters, and the count survives a reload to last_resort: unreachable.
func TestLabLastResortFlows(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, failoverOutbound)
	e.src.down("isp2")
	e.src.down("isp1")
	e.waitFor("the policy on its last resort", 2*time.Second, func() bool {
		out, _ := e.l.Run(context.Background(), lab.RoleGW, "nft", "list", "chain", "inet", "multihome", "pol0").Output()
		return strings.Contains(string(out), `counter name "last/main" return`)
	})
	before := newFlows(t, e.c.newFlows)
	const n = 5
	for range n {
		e.mustVia("lan1") // the main table's default route
	}
	time.Sleep(NewFlowsMaxAge)
	after := newFlows(t, e.c.newFlows)
	if d := after["main/"] - before["main/"]; d != n {
		t.Errorf("last resort main: counter moved by %v for %d flows (before %v, after %v)", d, n, before, after)
	}
	for _, k := range []string{"main/isp1", "main/isp2"} {
		if after[k] != before[k] {
			t.Errorf("%s moved with every link down: %v -> %v", k, before[k], after[k])
		}
	}

	cfg := labConfig(t, e.l, strings.Replace(failoverOutbound, "{name: main, type: failover}", "{name: main, type: failover, last_resort: unreachable}", 1))
	if err := e.c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	const refused = 3
	for range refused {
		if s, err := e.via("lan1"); err == nil {
			t.Fatalf("last resort unreachable: connection succeeded via %s", s)
		}
	}
	time.Sleep(NewFlowsMaxAge)
	final := newFlows(t, e.c.newFlows)
	// A refused SYN may be retried by the client: at least one flow each.
	if d := final["main/"] - after["main/"]; d < refused || d > 2*refused {
		t.Errorf("last resort unreachable: counter moved by %v for %d refused connections (after the reload it kept %v, now %v)", d, refused, after["main/"], final["main/"])
	}
}
