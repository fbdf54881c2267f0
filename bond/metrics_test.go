package bond

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsLint: the proxy's and the aggregator's metrics pass promlint
// and are named multihome_bond_* and multihome_aggregate_*.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := NewProxy(ProxyOptions{Aggregator: netip.MustParseAddrPort("203.0.113.80:7400")}, nil, slog.New(slog.DiscardHandler))
	a := NewAggregator(AggregatorOptions{}, slog.New(slog.DiscardHandler))
	reg.MustRegister(p.Collectors()...)
	reg.MustRegister(a.Collectors()...)
	p.total.WithLabelValues("bonded").Inc()
	p.bytes.WithLabelValues("up").Inc()
	p.linkByte.WithLabelValues("isp1", "down").Inc()
	a.accepted.WithLabelValues("relayed").Inc()
	a.bytes.WithLabelValues("up").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if len(mfs) < 8 {
		t.Errorf("only %d metric families", len(mfs))
	}
}
