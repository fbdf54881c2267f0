// Package metrics exposes multihome's state to Prometheus.
//
// Collectors here read live state when scraped, like GoBGP's pkg/metrics:
// Links asks its source for a snapshot of every link on each scrape, so a
// scrape always matches what the API and the dashboard show, and nothing
// is updated on the hot path. The only state kept between scrapes is what
// a snapshot cannot tell: how many times each link changed state (counted
// from the monitor's events by Links.Observe) and how config reloads went
// (Reloads.Observe).
//
// Every metric is named multihome_<subsystem>_<name>_<unit>: link, probe
// and config here. Other subsystems (dns, outbound, ...) register their
// own collectors, named the same way, on the same Registry; the API server
// serves it at /metrics. docs/metrics.md lists every metric, and a test
// lints the names with promlint.
package metrics
