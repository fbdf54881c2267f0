package outbound

import (
	"context"
	"time"

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
	// transit: the config has a transit link to an HA partner (the
	// datapath follows the role: FollowsRole).
	transit bool
}

func newFlowView(cfg *config.Config, o config.Outbound) *flowView {
	v := &flowView{scheme: route.SchemeOf(o), links: make([]string, len(cfg.Links)), transit: cfg.TransitLink() >= 0}
	for i, l := range cfg.Links {
		v.links[i] = l.Name
	}
	return v
}

// flowCount is one background count of the conntrack table by link. It
// is replaced, never changed.
type flowCount struct {
	view   *flowView
	counts []int // per link index, then every entry of the table
	at     time.Time
	took   time.Duration
}

// Bounds of the background count's period: it runs every
// flowCountShare × its own last duration (so it costs about 1/20 of a
// core however big the table is), but not more often than
// flowCountMinEvery nor less often than flowCountMaxEvery.
const (
	flowCountShare    = 20
	flowCountMinEvery = time.Second
	flowCountMaxEvery = 30 * time.Second
)

// countFlows keeps c.flows current until ctx is done: a streaming pass
// over the conntrack table (nothing kept per entry) every few seconds,
// and soon after a kick (a flush or a config change). Scrapes only read
// the result.
func (c *Controller) countFlows(ctx context.Context, kick <-chan struct{}) {
	var lastErr string
	for {
		took, err := c.countNow()
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				c.log.Warn("counting flows per link failed: the metrics keep the last count", "err", err)
				lastErr = msg
			}
		} else {
			lastErr = ""
		}
		every := min(max(flowCountShare*took, flowCountMinEvery), flowCountMaxEvery)
		gap := min(max(2*took, 50*time.Millisecond), every) // after a kick
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-kick:
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// countNow makes one count and stores it.
func (c *Controller) countNow() (time.Duration, error) {
	v := c.view.Load()
	counts := make([]int, len(v.links)+1)
	start := time.Now()
	err := c.ct.count(v.scheme.LinkOf, counts)
	took := time.Since(start)
	if err != nil {
		return took, err
	}
	c.flows.Store(&flowCount{view: v, counts: counts, at: time.Now(), took: took})
	return took, nil
}

// recount asks the background count to run soon (non-blocking).
func (c *Controller) recount() {
	select {
	case c.kickCount <- struct{}{}:
	default:
	}
}

// FlowCounts returns, for every link, how many tracked connections
// (conntrack entries) were pinned to it by their mark at the last
// background count, and when that count was made; ok is false before the
// first count. It costs O(links): it never reads conntrack.
func (c *Controller) FlowCounts() (counts map[string]int, at time.Time, ok bool) {
	f := c.flows.Load()
	if f == nil {
		return nil, time.Time{}, false
	}
	counts = make(map[string]int, len(f.view.links))
	for i, name := range f.view.links {
		counts[name] = f.counts[i]
	}
	return counts, f.at, true
}

var (
	mFlows = prometheus.NewDesc("multihome_outbound_flows",
		"Tracked connections (conntrack entries) pinned to each link by their mark, at the last background count (see multihome_outbound_flows_age_seconds).", []string{"link"}, nil)
	mFlowsAge = prometheus.NewDesc("multihome_outbound_flows_age_seconds",
		"Seconds since the background count behind multihome_outbound_flows finished.", nil, nil)
	mFlowsTook = prometheus.NewDesc("multihome_outbound_flows_count_duration_seconds",
		"How long the last background count of the conntrack table took (it runs every 20 times that, between 1 s and 30 s).", nil, nil)
	mEntries = prometheus.NewDesc("multihome_outbound_conntrack_entries",
		"Conntrack entries in the gateway's table at the last background count, of any link or none.", nil, nil)
)

// flowCollector reports the last background count: a scrape costs
// O(links) whatever the size of the conntrack table.
type flowCollector struct{ c *Controller }

func (f flowCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mFlows
	ch <- mFlowsAge
	ch <- mFlowsTook
	ch <- mEntries
}

func (f flowCollector) Collect(ch chan<- prometheus.Metric) {
	fc := f.c.flows.Load()
	if fc == nil {
		return // not counted yet
	}
	for i, name := range fc.view.links {
		ch <- prometheus.MustNewConstMetric(mFlows, prometheus.GaugeValue, float64(fc.counts[i]), name)
	}
	ch <- prometheus.MustNewConstMetric(mFlowsAge, prometheus.GaugeValue, time.Since(fc.at).Seconds())
	ch <- prometheus.MustNewConstMetric(mFlowsTook, prometheus.GaugeValue, fc.took.Seconds())
	ch <- prometheus.MustNewConstMetric(mEntries, prometheus.GaugeValue, float64(fc.counts[len(fc.view.links)]))
}
