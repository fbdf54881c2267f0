package outbound

import (
	"path/filepath"
	"testing"

	"github.com/multihome/multihome/monitor"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsLint(t *testing.T) {
	cfg := loadConfig(t, filepath.Join("testdata", "rules.yaml"))
	c, err := New(cfg, newFakeSource(cfg, monitor.Up), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.EffectiveOutbound()
	p := build(cfg, o, viewsFor(cfg, states(cfg, nil), nil), false)
	c.metrics.setShares(p, []string{"isp1", "isp2", "lte"})
	c.metrics.applies.WithLabelValues("ok").Inc()
	c.metrics.flushed.WithLabelValues("isp1").Add(3)
	for _, col := range c.Collectors() {
		if _, ok := col.(flowCollector); ok {
			continue // reads conntrack: checked in the lab (e2e)
		}
		probs, err := testutil.CollectAndLint(col)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			t.Errorf("metric %s: %s", p.Metric, p.Text)
		}
	}
	got := testutil.ToFloat64(c.metrics.share.WithLabelValues("default", "isp1"))
	if got != 1 { // failover tier 1 is isp1 alone
		t.Errorf("share of isp1 in default = %v, want 1", got)
	}
}
