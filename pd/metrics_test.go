package pd

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetrics: the lease metrics follow a client's lease and pass promlint.
func TestMetrics(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	leases := make(chan Lease, 8)
	c := New("isp1", "wan1", 56, func(l Lease) { leases <- l }, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Transport: f, DUID: clientDUID})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector(func() []*Client { return []*Client{c} }))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP multihome_ipv6_pd_bound 1 while the link holds a delegated prefix (DHCPv6-PD), 0 while it asks for one.
# TYPE multihome_ipv6_pd_bound gauge
multihome_ipv6_pd_bound{link="isp1"} 0
`), "multihome_ipv6_pd_bound"); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	next(t, leases, 5*time.Second, "lease")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	var valid float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "multihome_ipv6_pd_lease_valid_seconds" && len(mf.GetMetric()) == 1 {
			valid = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if valid < 2 || valid > 4 {
		t.Errorf("multihome_ipv6_pd_lease_valid_seconds %v, want about 4", valid)
	}
}
