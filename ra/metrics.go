package ra

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the advertiser's state as multihome_ipv6_* metrics,
// read when scraped.
func (a *Advertiser) Collector() prometheus.Collector { return collector{a} }

type collector struct{ a *Advertiser }

var (
	mSent      = prometheus.NewDesc("multihome_ipv6_ra_sent_total", "Router advertisements sent on the LAN.", nil, nil)
	mPreferred = prometheus.NewDesc("multihome_ipv6_prefix_preferred", "1 while a prefix is advertised as preferred, 0 while deprecated (link down) or retired.", []string{"link", "prefix"}, nil)
	mActive    = prometheus.NewDesc("multihome_ipv6_nptv6_active", "1 for the link new flows of the internal prefix leave by (nptv6 mode).", []string{"link"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mSent
	ch <- mPreferred
	ch <- mActive
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.mu.Lock()
	sent := a.sent
	ps := a.stateLocked(time.Now())
	active := a.active
	a.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(mSent, prometheus.CounterValue, float64(sent))
	for _, p := range ps {
		v := 0.0
		if p.Usable && !p.Retired {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(mPreferred, prometheus.GaugeValue, v, p.Link, p.Prefix.String())
	}
	if active != "" {
		ch <- prometheus.MustNewConstMetric(mActive, prometheus.GaugeValue, 1, active)
	}
}
