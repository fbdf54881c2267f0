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

var mLastResort = prometheus.NewDesc("multihome_outbound_last_resort_flows_total",
	"New flows each policy sent to its last resort (the main table, or refused as unreachable) because no member took new flows, from the ruleset's nft counters.", []string{"policy"}, nil)

// flowKey is a counter's series: link "" is the policy's last resort.
type flowKey struct{ policy, link string }

// newFlowsCollector reads the ruleset's counters (new/POLICY/LINK and
// last/POLICY) when
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

func (f *newFlowsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mNewFlows
	ch <- mLastResort
}

func (f *newFlowsCollector) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.at) >= NewFlowsMaxAge {
		f.refresh()
	}
	for k, v := range f.totals {
		if k.link == "" {
			ch <- prometheus.MustNewConstMetric(mLastResort, prometheus.CounterValue, float64(v), k.policy)
			continue
		}
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
		var k flowKey
		if pol, ok := strings.CutPrefix(name, "last/"); ok {
			k.policy = pol
		} else if rest, ok := strings.CutPrefix(name, "new/"); ok {
			pol, link, ok := strings.Cut(rest, "/")
			if !ok || link == "" {
				continue
			}
			k = flowKey{pol, link}
		} else {
			continue
		}
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
