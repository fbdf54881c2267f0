package ha

import "github.com/prometheus/client_golang/prometheus"

var (
	roleDesc     = prometheus.NewDesc("multihome_ha_role", "1 for the role this node holds now (init, backup, master, fault, stopped), 0 for the others.", []string{"role"}, nil)
	priorityDesc = prometheus.NewDesc("multihome_ha_priority", "The VRRP priority this node advertises: base plus what its healthy uplinks add.", nil, nil)
	takeoverDesc = prometheus.NewDesc("multihome_ha_takeovers_total", "Times this node became master.", nil, nil)
	commitDesc   = prometheus.NewDesc("multihome_ha_commit_seconds", "How long the last commit of the synced connections into the kernel took.", nil, nil)
	partnerDesc  = prometheus.NewDesc("multihome_ha_partner_seen", "1 while sync traffic from the partner arrives.", nil, nil)
	externalDesc = prometheus.NewDesc("multihome_ha_sync_external_flows", "The partner's flows held by conntrackd for a takeover.", nil, nil)
	restartsDesc = prometheus.NewDesc("multihome_ha_program_restarts_total", "Restarts of keepalived and conntrackd by the supervisor.", []string{"program"}, nil)
	allRoles     = []Role{RoleInit, RoleBackup, RoleMaster, RoleFault, RoleStopped}
)

type collector struct{ n *Node }

// Collector returns the node's Prometheus collector; it reads the status
// when scraped.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{roleDesc, priorityDesc, takeoverDesc, commitDesc, partnerDesc, externalDesc, restartsDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Status()
	for _, r := range allRoles {
		v := 0.0
		if st.Role == r {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(roleDesc, prometheus.GaugeValue, v, string(r))
	}
	ch <- prometheus.MustNewConstMetric(priorityDesc, prometheus.GaugeValue, float64(st.Priority))
	ch <- prometheus.MustNewConstMetric(takeoverDesc, prometheus.CounterValue, float64(st.Takeovers))
	ch <- prometheus.MustNewConstMetric(commitDesc, prometheus.GaugeValue, st.LastCommit.Seconds())
	seen := 0.0
	if st.Sync.PartnerSeen {
		seen = 1
	}
	ch <- prometheus.MustNewConstMetric(partnerDesc, prometheus.GaugeValue, seen)
	ch <- prometheus.MustNewConstMetric(externalDesc, prometheus.GaugeValue, float64(st.Sync.External))
	for _, p := range st.Programs {
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(p.Restarts), p.Name)
	}
}
