package outbound

import "github.com/prometheus/client_golang/prometheus"

// metrics are the controller's Prometheus metrics, multihome_outbound_*
// (listed in docs/outbound.md).
type metrics struct {
	applies      *prometheus.CounterVec
	applySeconds prometheus.Histogram
	flushed      *prometheus.CounterVec
	flushSkipped *prometheus.CounterVec
	migrated     *prometheus.CounterVec
	repairs      *prometheus.CounterVec
	share        *prometheus.GaugeVec
}

func newMetrics() *metrics {
	ns, sub := "multihome", "outbound"
	return &metrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "applies_total",
			Help: "Kernel state applications (ruleset, rules, routes), by result (ok, error)."}, []string{"result"}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "apply_duration_seconds",
			Help:    "Time to apply a changed kernel state.",
			Buckets: []float64{.005, .01, .02, .05, .1, .2, .5, 1, 2}}),
		flushed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flushed_flows_total",
			Help: "Conntrack entries deleted because their link went down, by link."}, []string{"link"}),
		flushSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "flush_skipped_total",
			Help: "Times a down link's flows were kept because no other link was healthy, by link."}, []string{"link"}),
		migrated: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "migrated_flows_total",
			Help: "Conntrack entries deleted to move flows back after a recovery (migrate_on_recovery), by rule and the link they left."}, []string{"rule", "link"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "repairs_total",
			Help: "Kernel state found changed outside multihome and put back, by kind (ruleset, routes)."}, []string{"kind"}),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "new_flow_share_ratio",
			Help: "Share of new flows each policy gives each link now (0-1; all 0 for a policy on its last resort)."}, []string{"policy", "link"}),
	}
}

// Collectors returns the controller's Prometheus collectors, to register
// on the daemon's registry.
func (c *Controller) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.applies, m.applySeconds, m.flushed, m.flushSkipped, m.migrated, m.repairs, m.share, flowCollector{c}, c.newFlows}
}

func (m *metrics) setShares(p *plan, links []string) {
	m.share.Reset()
	for _, ch := range p.choices {
		total := 0
		for _, mb := range ch.members {
			total += mb.weight
		}
		for _, name := range ch.policy.Links {
			m.share.WithLabelValues(ch.policy.Name, name).Set(0)
		}
		for _, mb := range ch.members {
			if mb.idx < len(links) && total > 0 {
				m.share.WithLabelValues(ch.policy.Name, links[mb.idx]).Set(float64(mb.weight) / float64(total))
			}
		}
	}
}
