// Package api is multihome's operator interface: an HTTP JSON API, the
// Prometheus endpoint and the web dashboard, served by one server, and a
// Go client for it that the CLI uses.
//
// The server listens on a unix socket by default, or on a TCP address; a
// bearer token is required whenever the address is not loopback, and
// enforced on every listener once set. It reads link state from a Backend
// (the daemon: the link monitor plus config and reload), keeps the last
// events in a ring as the decision log, and streams new ones as
// server-sent events. Actions (down, drain, up) go to the monitor's single
// writer through Backend.SetAdmin; the API holds no link state of its own.
//
// Routes (docs/api.md describes every one):
//
//	GET  /api/v1/status              overall health and a summary per link
//	GET  /api/v1/links               every link's full status
//	GET  /api/v1/links/{name}        one link
//	POST /api/v1/links/{name}/{down|drain|up}
//	GET  /api/v1/events?limit=N      the decision log
//	GET  /api/v1/events/stream       the decision log, live (SSE)
//	GET  /api/v1/history             recent samples of every link, for graphs
//	GET  /api/v1/config              the config in force, as JSON
//	POST /api/v1/reload              re-read the config file and apply it
//	GET  /metrics                    Prometheus
//	GET  /                           the dashboard (package web)
package api
