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
	mSetErrors = prometheus.NewDesc("multihome_ipv6_firewall_set_errors_total", "Failed attempts to read or fill an operator's firewall set (ipv6.firewall_sets): missing, wrong type, or nft failed.", []string{"set"}, nil)
	mSetWrites = prometheus.NewDesc("multihome_ipv6_firewall_set_updates_total", "Times an operator's firewall set was rewritten because its elements differed from the LAN prefixes.", []string{"set"}, nil)
	mSetSize   = prometheus.NewDesc("multihome_ipv6_firewall_set_prefixes", "LAN prefixes an operator's firewall set should hold now (retired ones included).", []string{"set"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mSent
	ch <- mPreferred
	ch <- mActive
	ch <- mSetErrors
	ch <- mSetWrites
	ch <- mSetSize
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.mu.Lock()
	sent := a.sent
	ps := a.stateLocked(time.Now())
	active := a.active
	type setStat struct {
		id                 string
		errs, writes, size float64
	}
	var sets []setStat
	for id := range a.sets.size {
		sets = append(sets, setStat{id, a.sets.errs[id], a.sets.updates[id], float64(a.sets.size[id])})
	}
	for id, n := range a.sets.errs {
		if _, ok := a.sets.size[id]; !ok { // a set no longer configured: its counters stay
			sets = append(sets, setStat{id, n, a.sets.updates[id], -1})
		}
	}
	for id, n := range a.sets.updates {
		if _, ok := a.sets.size[id]; !ok && a.sets.errs[id] == 0 {
			sets = append(sets, setStat{id, 0, n, -1})
		}
	}
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
	for _, s := range sets {
		ch <- prometheus.MustNewConstMetric(mSetErrors, prometheus.CounterValue, s.errs, s.id)
		ch <- prometheus.MustNewConstMetric(mSetWrites, prometheus.CounterValue, s.writes, s.id)
		if s.size >= 0 {
			ch <- prometheus.MustNewConstMetric(mSetSize, prometheus.GaugeValue, s.size, s.id)
		}
	}
}
