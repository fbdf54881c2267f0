package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/monitor"
)

// Namespace prefixes every multihome metric.
const Namespace = "multihome"

// Snapshotter is what Links reads on every scrape; monitor.Source is one.
type Snapshotter interface {
	Snapshot() []monitor.Status
}

var (
	states = []monitor.State{monitor.Unknown, monitor.Up, monitor.Degraded, monitor.Down}
	admins = []monitor.Admin{monitor.AdminNone, monitor.AdminDown, monitor.AdminDrain}
)

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, subsystem, name), help, labels, nil)
}

var (
	linkInfo = desc("link", "info",
		"Always 1; labels map the link name to its interface.", "link", "interface")
	linkState = desc("link", "state",
		"Effective state of the link: 1 for the current state, 0 for the others.", "link", "state")
	linkHealth = desc("link", "health",
		"Health verdict of the probes, before operator overrides: 1 for the current verdict, 0 for the others.", "link", "state")
	linkAdmin = desc("link", "admin",
		"Operator override of the link: 1 for the current one (none, down, drain), 0 for the others.", "link", "admin")
	linkHoldDown = desc("link", "hold_down",
		"1 while a recovered link waits out its hold-down before failback.", "link")
	linkCarrier = desc("link", "carrier",
		"1 when the interface has carrier.", "link")
	linkSaturated = desc("link", "saturated",
		"1 while the link's utilisation stays over the saturation threshold.", "link")
	linkSince = desc("link", "state_change_timestamp_seconds",
		"Unix time of the link's last state change (0 if it never changed).", "link")
	linkRTT = desc("link", "rtt_seconds",
		"Round-trip time through the link, EWMA over all probe targets.", "link")
	linkRTTP50 = desc("link", "rtt_p50_seconds",
		"Median round-trip time through the link over the health window.", "link")
	linkRTTP95 = desc("link", "rtt_p95_seconds",
		"95th percentile round-trip time through the link over the health window.", "link")
	linkJitter = desc("link", "jitter_seconds",
		"Round-trip time variation through the link.", "link")
	linkLoss = desc("link", "loss_ratio",
		"Fraction of probes lost over the health window (0-1).", "link")
	linkUtil = desc("link", "utilization_ratio",
		"Traffic rate over the configured capacity (0-1; 0 when no capacity is configured), per direction (down: received, up: sent).", "link", "direction")
	linkRate = desc("link", "rate_bytes_per_second",
		"Traffic rate measured from the interface counters, per direction (down: received, up: sent).", "link", "direction")
	linkBytes = desc("link", "bytes_total",
		"Interface byte counters, per direction (down: received, up: sent).", "link", "direction")
	linkTargets = desc("link", "targets",
		"Number of probe targets of the link.", "link")
	linkTargetsUp = desc("link", "targets_up",
		"Number of the link's probe targets answering.", "link")
	linkChanges = desc("link", "state_changes_total",
		"State changes of the link since the daemon started, by the state entered.", "link", "to")

	targetUp = desc("probe", "target_up",
		"1 when the probe target answers through its link.", "link", "type", "target")
	targetRTT = desc("probe", "target_rtt_seconds",
		"Round-trip time to the probe target through its link (EWMA).", "link", "type", "target")
	targetLoss = desc("probe", "target_loss_ratio",
		"Fraction of probes to the target lost over the health window (0-1).", "link", "type", "target")
	targetSent = desc("probe", "sent_total",
		"Probes sent to the target.", "link", "type", "target")
	targetLost = desc("probe", "lost_total",
		"Probes to the target that got no valid answer.", "link", "type", "target")
)

// Links collects the state of every link and of its probe targets from a
// snapshot taken at scrape time. Feed it the monitor's events with Observe
// so it can count state changes.
type Links struct {
	src Snapshotter

	mu      sync.Mutex
	changes map[changeKey]uint64
}

type changeKey struct {
	link string
	to   monitor.State
}

// NewLinks returns a collector reading src on every scrape.
func NewLinks(src Snapshotter) *Links {
	return &Links{src: src, changes: make(map[changeKey]uint64)}
}

// Observe counts e if it is a state change. Call it for every event of the
// source; it never blocks.
func (l *Links) Observe(e monitor.Event) {
	if e.Kind != monitor.StateChanged {
		return
	}
	l.mu.Lock()
	l.changes[changeKey{e.Link, e.To}]++
	l.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (l *Links) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		linkInfo, linkState, linkHealth, linkAdmin, linkHoldDown, linkCarrier, linkSaturated, linkSince,
		linkRTT, linkRTTP50, linkRTTP95, linkJitter, linkLoss, linkUtil, linkRate, linkBytes,
		linkTargets, linkTargetsUp, linkChanges,
		targetUp, targetRTT, targetLoss, targetSent, targetLost,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (l *Links) Collect(ch chan<- prometheus.Metric) {
	snap := l.src.Snapshot()
	l.mu.Lock()
	changes := make(map[changeKey]uint64, len(l.changes))
	for k, v := range l.changes {
		changes[k] = v
	}
	l.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	seen := make(map[string]bool, len(snap))
	for _, s := range snap {
		if seen[s.Link] { // a source bug must not fail the whole scrape
			continue
		}
		seen[s.Link] = true
		n := s.Link
		gauge(linkInfo, 1, n, s.Interface)
		for _, st := range states {
			gauge(linkState, b2f(s.State == st), n, st.String())
			gauge(linkHealth, b2f(s.Health == st), n, st.String())
			counter(linkChanges, float64(changes[changeKey{n, st}]), n, st.String())
		}
		for _, a := range admins {
			gauge(linkAdmin, b2f(s.Admin == a), n, a.String())
		}
		gauge(linkHoldDown, b2f(s.HoldDown), n)
		gauge(linkCarrier, b2f(s.Carrier), n)
		gauge(linkSaturated, b2f(s.Saturated), n)
		since := 0.0
		if !s.Since.IsZero() {
			since = float64(s.Since.UnixNano()) / 1e9
		}
		gauge(linkSince, since, n)
		gauge(linkRTT, s.RTT.Seconds(), n)
		gauge(linkRTTP50, s.RTTP50.Seconds(), n)
		gauge(linkRTTP95, s.RTTP95.Seconds(), n)
		gauge(linkJitter, s.Jitter.Seconds(), n)
		gauge(linkLoss, s.Loss, n)
		gauge(linkUtil, s.UtilDown, n, "down")
		gauge(linkUtil, s.UtilUp, n, "up")
		gauge(linkRate, float64(s.RateDown)/8, n, "down")
		gauge(linkRate, float64(s.RateUp)/8, n, "up")
		counter(linkBytes, float64(s.BytesDown), n, "down")
		counter(linkBytes, float64(s.BytesUp), n, "up")
		gauge(linkTargets, float64(len(s.Targets)), n)
		gauge(linkTargetsUp, float64(s.TargetsUp), n)

		tseen := make(map[[2]string]bool, len(s.Targets))
		for _, t := range s.Targets {
			k := [2]string{t.Type, t.Target}
			if tseen[k] {
				continue
			}
			tseen[k] = true
			gauge(targetUp, b2f(t.Up), n, t.Type, t.Target)
			gauge(targetRTT, t.RTT.Seconds(), n, t.Type, t.Target)
			gauge(targetLoss, t.Loss, n, t.Type, t.Target)
			counter(targetSent, float64(t.Sent), n, t.Type, t.Target)
			counter(targetLost, float64(t.Lost), n, t.Type, t.Target)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
