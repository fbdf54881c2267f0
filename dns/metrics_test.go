package dns

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricsLint(t *testing.T) {
	s := &Server{}
	s.ctr.udp.Add(3)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP multihome_dns_queries_total DNS queries received, by transport.
# TYPE multihome_dns_queries_total counter
multihome_dns_queries_total{transport="tcp"} 0
multihome_dns_queries_total{transport="udp"} 3
`
	if err := testutil.CollectAndCompare(s.Collector(), strings.NewReader(want), "multihome_dns_queries_total"); err != nil {
		t.Error(err)
	}
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
