package outbound

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/nft"
)

// NewFlowsMaxAge is how long one reading of the ruleset's new-flow
// counters serves scrapes: scrapes closer together than this share one
// `nft list counters` run.
const NewFlowsMaxAge = time.Second

var mNewFlows = prometheus.NewDesc("multihome_outbound_new_flows_total",
	"New flows each policy gave each link, from the ruleset's nft counters (read at most once a second, however many scrapes).", []string{"policy", "link"}, nil)

type flowKey struct{ policy, link string }

// newFlowsCollector reads the ruleset's counters (new/POLICY/LINK) when
// scraped, at most once per NewFlowsMaxAge (one netlink dump of the
// table's counter objects, nft.Counters), and keeps the totals
// monotonic: a counter found lower than at the last reading was
// re-created (the table was deleted and re-made, e.g. after a clean
// restart), and its previous value is added to it from then on.
type newFlowsCollector struct {
	read func(context.Context) (map[string]uint64, error)

	mu     sync.Mutex
	at     time.Time
	last   map[flowKey]uint64
	base   map[flowKey]uint64
	totals map[flowKey]uint64
}

func newNewFlowsCollector(read func(context.Context) (map[string]uint64, error)) *newFlowsCollector {
	return &newFlowsCollector{read: read, last: map[flowKey]uint64{}, base: map[flowKey]uint64{}, totals: map[flowKey]uint64{}}
}

func (f *newFlowsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- mNewFlows }

func (f *newFlowsCollector) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.at) >= NewFlowsMaxAge {
		f.refresh()
	}
	for k, v := range f.totals {
		ch <- prometheus.MustNewConstMetric(mNewFlows, prometheus.CounterValue, float64(v), k.policy, k.link)
	}
}

// refresh reads the counters once. A failed read keeps the totals of
// the last good one; a counter missing from a good one (its policy or
// the table is gone) keeps its total and starts again from 0.
func (f *newFlowsCollector) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), nft.Timeout)
	defer cancel()
	raw, err := f.read(ctx)
	f.at = time.Now()
	if err != nil {
		return
	}
	seen := map[flowKey]bool{}
	for name, v := range raw {
		rest, ok := strings.CutPrefix(name, "new/")
		if !ok {
			continue
		}
		pol, link, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		k := flowKey{pol, link}
		seen[k] = true
		if v < f.last[k] {
			f.base[k] += f.last[k]
		}
		f.last[k] = v
		f.totals[k] = f.base[k] + v
	}
	// A pair whose counter is gone (policy removed, table deleted) keeps
	// its total; if it comes back its counter starts from 0.
	for k := range f.last {
		if !seen[k] {
			f.base[k] += f.last[k]
			f.last[k] = 0
		}
	}
}
