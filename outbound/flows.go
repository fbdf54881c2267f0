package outbound

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/route"
)

// flowView is what counting flows needs from the config in force: the
// mark scheme and the link names by index. It is replaced, never
// changed, so scrapes read it without locking.
type flowView struct {
	scheme route.Scheme
	links  []string
}

func newFlowView(cfg *config.Config, o config.Outbound) *flowView {
	v := &flowView{scheme: schemeOf(o), links: make([]string, len(cfg.Links))}
	for i, l := range cfg.Links {
		v.links[i] = l.Name
	}
	return v
}

// FlowCounts returns, for every link, how many tracked connections
// (conntrack entries) are pinned to it by their mark now.
func (c *Controller) FlowCounts() (map[string]int, error) {
	v := c.view.Load()
	conn, err := c.ct.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	flows, err := conn.Dump(nil)
	if err != nil {
		return nil, fmt.Errorf("conntrack dump: %w", err)
	}
	counts := make(map[string]int, len(v.links))
	for _, name := range v.links {
		counts[name] = 0
	}
	for _, f := range flows {
		if i := v.scheme.LinkOf(f.Mark); i >= 0 && i < len(v.links) {
			counts[v.links[i]]++
		}
	}
	return counts, nil
}

var mFlows = prometheus.NewDesc("multihome_outbound_flows", "Tracked connections (conntrack entries) pinned to each link by their mark, counted when scraped.", []string{"link"}, nil)

// flowCollector counts flows per link at scrape time.
type flowCollector struct{ c *Controller }

func (f flowCollector) Describe(ch chan<- *prometheus.Desc) { ch <- mFlows }

func (f flowCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := f.c.FlowCounts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(mFlows, err)
		return
	}
	for link, n := range counts {
		ch <- prometheus.MustNewConstMetric(mFlows, prometheus.GaugeValue, float64(n), link)
	}
}
