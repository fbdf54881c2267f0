package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloads counts config reloads by result. Whatever reloads the config
// (the API, SIGHUP) reports the outcome with Observe.
type Reloads struct {
	total       *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge
}

// NewReloads returns a collector for reload results. The last reload
// counts as successful until one fails: the daemon starts on a good config.
func NewReloads() *Reloads {
	r := &Reloads{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "config", Name: "reloads_total",
			Help: "Config reloads by result: success (applied) or failure (rejected, the old config stays in force).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "config", Name: "last_reload_successful",
			Help: "1 if the last reload was applied (or none was tried), 0 if it was rejected.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "Unix time the config in force was applied (daemon start or last successful reload).",
		}),
	}
	r.total.WithLabelValues("success")
	r.total.WithLabelValues("failure")
	r.lastOK.Set(1)
	r.lastSuccess.SetToCurrentTime()
	return r
}

// Observe records one reload: err is nil when it was applied.
func (r *Reloads) Observe(err error) {
	if err != nil {
		r.total.WithLabelValues("failure").Inc()
		r.lastOK.Set(0)
		return
	}
	r.total.WithLabelValues("success").Inc()
	r.lastOK.Set(1)
	r.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
}

// Describe implements prometheus.Collector.
func (r *Reloads) Describe(ch chan<- *prometheus.Desc) {
	r.total.Describe(ch)
	r.lastOK.Describe(ch)
	r.lastSuccess.Describe(ch)
}

// Collect implements prometheus.Collector.
func (r *Reloads) Collect(ch chan<- prometheus.Metric) {
	r.total.Collect(ch)
	r.lastOK.Collect(ch)
	r.lastSuccess.Collect(ch)
}
