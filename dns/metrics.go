package dns

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the server's counters as multihome_dns_* metrics,
// read when scraped.
func (s *Server) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Server }

var (
	mQueries   = prometheus.NewDesc("multihome_dns_queries_total", "DNS queries received, by transport.", []string{"transport"}, nil)
	mResponses = prometheus.NewDesc("multihome_dns_responses_total", "DNS responses sent, by RCODE.", []string{"rcode"}, nil)
	mTrunc     = prometheus.NewDesc("multihome_dns_truncated_total", "UDP responses sent truncated (TC=1) for TCP retry.", nil, nil)
	mRRL       = prometheus.NewDesc("multihome_dns_rrl_total", "Responses affected by response rate limiting, by action (drop, slip).", []string{"action"}, nil)
	mXfr       = prometheus.NewDesc("multihome_dns_transfers_total", "Zone transfers, by result (served, refused).", []string{"result"}, nil)
	mNotify    = prometheus.NewDesc("multihome_dns_notifies_total", "NOTIFY messages to secondaries, by result (ok, failed).", []string{"result"}, nil)
	mUpdates   = prometheus.NewDesc("multihome_dns_updates_total", "RFC 2136 updates pushed to external primaries, by result (ok, failed).", []string{"result"}, nil)
	mRecords   = prometheus.NewDesc("multihome_dns_pushed_records_total", "Records added and removed at external primaries, by operation.", []string{"op"}, nil)
	mSerial    = prometheus.NewDesc("multihome_dns_zone_serial", "Current SOA serial of each served zone.", []string{"zone"}, nil)
	mChanges   = prometheus.NewDesc("multihome_dns_answer_changes_total", "Changes of a name's published addresses following link health.", nil, nil)
	mTCPOpen   = prometheus.NewDesc("multihome_dns_tcp_connections", "Open DNS TCP connections.", nil, nil)
	mTCPRej    = prometheus.NewDesc("multihome_dns_tcp_rejected_total", "TCP connections closed at accept, by cap (total, client).", []string{"cap"}, nil)
	mTCPClosed = prometheus.NewDesc("multihome_dns_tcp_closed_total", "TCP connections closed by the server, by reason (idle, partial, max_queries, bad_message).", []string{"reason"}, nil)
	mRRLEvict  = prometheus.NewDesc("multihome_dns_rrl_evicted_total", "Rate-limit buckets evicted because the table was full.", nil, nil)
	mRebuilds  = prometheus.NewDesc("multihome_dns_rebuilds_total", "Views of every steered name rebuilt (link events, reloads).", nil, nil)
	mRebuildS  = prometheus.NewDesc("multihome_dns_last_rebuild_seconds", "How long the last rebuild of the views took.", nil, nil)
	mAnswers   = prometheus.NewDesc("multihome_dns_answers_total", "Address answers by name, policy and outcome (healthy, all_down, servfail).", []string{"name", "policy", "outcome"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mQueries, mResponses, mTrunc, mRRL, mXfr, mNotify, mUpdates, mRecords, mSerial, mChanges, mAnswers, mTCPOpen, mTCPRej, mTCPClosed, mRRLEvict, mRebuilds, mRebuildS} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(mQueries, st.UDP, "udp")
	counter(mQueries, st.TCP, "tcp")
	for rc, n := range st.Rcodes {
		counter(mResponses, n, rc)
	}
	counter(mTrunc, st.Truncated)
	counter(mRRL, st.RRLDropped, "drop")
	counter(mRRL, st.RRLSlipped, "slip")
	counter(mXfr, st.TransfersOut, "served")
	counter(mXfr, st.TransfersRefused, "refused")
	counter(mNotify, st.NotifySent, "ok")
	counter(mNotify, st.NotifyFailed, "failed")
	counter(mUpdates, st.UpdatesPushed, "ok")
	counter(mUpdates, st.UpdateFailures, "failed")
	counter(mRecords, st.RecordsAdded, "add")
	counter(mRecords, st.RecordsRemoved, "remove")
	for z, serial := range st.Serials {
		ch <- prometheus.MustNewConstMetric(mSerial, prometheus.GaugeValue, float64(serial), z)
	}
	counter(mChanges, st.AnswerChanges)
	ch <- prometheus.MustNewConstMetric(mTCPOpen, prometheus.GaugeValue, float64(st.TCPOpen))
	for k, v := range st.TCPRejected {
		counter(mTCPRej, v, k)
	}
	for k, v := range st.TCPClosed {
		counter(mTCPClosed, v, k)
	}
	counter(mRRLEvict, st.RRLEvicted)
	counter(mRebuilds, st.Rebuilds)
	ch <- prometheus.MustNewConstMetric(mRebuildS, prometheus.GaugeValue, st.LastRebuild.Seconds())
	for _, n := range st.Names {
		counter(mAnswers, n.Answers, n.Name, n.Policy, "healthy")
		counter(mAnswers, n.AllDown, n.Name, n.Policy, "all_down")
		counter(mAnswers, n.Servfail, n.Name, n.Policy, "servfail")
	}
}
