package pd

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the clients' leases as multihome_ipv6_pd_* metrics,
// read when scraped; clients returns the clients running.
func Collector(clients func() []*Client) prometheus.Collector { return collector{clients} }

type collector struct{ clients func() []*Client }

var (
	mBound     = prometheus.NewDesc("multihome_ipv6_pd_bound", "1 while the link holds a delegated prefix (DHCPv6-PD), 0 while it asks for one.", []string{"link"}, nil)
	mValid     = prometheus.NewDesc("multihome_ipv6_pd_lease_valid_seconds", "What is left of the delegated prefix's valid lifetime.", []string{"link", "prefix"}, nil)
	mPreferred = prometheus.NewDesc("multihome_ipv6_pd_lease_preferred_seconds", "What is left of the delegated prefix's preferred lifetime.", []string{"link", "prefix"}, nil)
	mChanges   = prometheus.NewDesc("multihome_ipv6_pd_lease_changes_total", "Lease changes: bound, restored (kept from the last run), renewed, rebound, changed (another prefix), lost.", []string{"link", "change"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mBound
	ch <- mValid
	ch <- mPreferred
	ch <- mChanges
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, cl := range c.clients() {
		l, bound := cl.Lease()
		b := 0.0
		if bound {
			b = 1
			ch <- prometheus.MustNewConstMetric(mValid, prometheus.GaugeValue, max(l.Valid.Sub(now).Seconds(), 0), cl.link, l.Prefix.String())
			ch <- prometheus.MustNewConstMetric(mPreferred, prometheus.GaugeValue, max(l.Preferred.Sub(now).Seconds(), 0), cl.link, l.Prefix.String())
		}
		ch <- prometheus.MustNewConstMetric(mBound, prometheus.GaugeValue, b, cl.link)
		for _, k := range []string{"bound", "restored", "renewed", "rebound", "changed", "lost"} {
			ch <- prometheus.MustNewConstMetric(mChanges, prometheus.CounterValue, float64(cl.Changes()[k]), cl.link, k)
		}
	}
}
