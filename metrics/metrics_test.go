package metrics

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/multihome/multihome/monitor"
)

type fakeSource struct {
	mu   sync.Mutex
	snap []monitor.Status
}

func (f *fakeSource) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]monitor.Status(nil), f.snap...)
}

func (f *fakeSource) set(s ...monitor.Status) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
}

func sample() []monitor.Status {
	return []monitor.Status{
		{
			Link: "isp1", Interface: "wan1", State: monitor.Up, Health: monitor.Up, Carrier: true,
			RTT: 12 * time.Millisecond, RTTP50: 11 * time.Millisecond, RTTP95: 20 * time.Millisecond,
			Jitter: 2 * time.Millisecond, Loss: 0.01,
			RateDown: 80_000_000, RateUp: 8_000_000, UtilDown: 0.8, UtilUp: 0.16,
			BytesDown: 1 << 30, BytesUp: 1 << 20,
			TargetsUp: 1,
			Targets: []monitor.TargetStatus{
				{Type: "icmp", Target: "192.0.2.1", Up: true, RTT: 12 * time.Millisecond, Sent: 100, Lost: 1, Loss: 0.01},
				{Type: "tcp", Target: "192.0.2.2:443", Up: false, Sent: 100, Lost: 100, Loss: 1, LastError: "timeout"},
			},
			Since: time.Unix(1700000000, 0),
		},
		{
			Link: "isp2", Interface: "wan2", State: monitor.Down, Health: monitor.Up, Admin: monitor.AdminDown,
			Reason: "operator",
		},
	}
}

func TestLint(t *testing.T) {
	src := &fakeSource{}
	src.set(sample()...)
	reg := NewRegistry()
	reg.MustRegister(NewLinks(src), NewReloads())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		n := mf.GetName()
		if !strings.HasPrefix(n, "multihome_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") {
			t.Errorf("metric %s is outside the multihome_ namespace", n)
		}
	}
}

func TestLinksFollowSnapshot(t *testing.T) {
	src := &fakeSource{}
	src.set(sample()...)
	l := NewLinks(src)
	want := `
# HELP multihome_link_state Effective state of the link: 1 for the current state, 0 for the others.
# TYPE multihome_link_state gauge
multihome_link_state{link="isp1",state="degraded"} 0
multihome_link_state{link="isp1",state="down"} 0
multihome_link_state{link="isp1",state="unknown"} 0
multihome_link_state{link="isp1",state="up"} 1
multihome_link_state{link="isp2",state="degraded"} 0
multihome_link_state{link="isp2",state="down"} 1
multihome_link_state{link="isp2",state="unknown"} 0
multihome_link_state{link="isp2",state="up"} 0
# HELP multihome_link_rtt_seconds Round-trip time through the link, EWMA over all probe targets.
# TYPE multihome_link_rtt_seconds gauge
multihome_link_rtt_seconds{link="isp1"} 0.012
multihome_link_rtt_seconds{link="isp2"} 0
# HELP multihome_link_rate_bytes_per_second Traffic rate measured from the interface counters, per direction (down: received, up: sent).
# TYPE multihome_link_rate_bytes_per_second gauge
multihome_link_rate_bytes_per_second{direction="down",link="isp1"} 1e+07
multihome_link_rate_bytes_per_second{direction="down",link="isp2"} 0
multihome_link_rate_bytes_per_second{direction="up",link="isp1"} 1e+06
multihome_link_rate_bytes_per_second{direction="up",link="isp2"} 0
# HELP multihome_probe_target_up 1 when the probe target answers through its link.
# TYPE multihome_probe_target_up gauge
multihome_probe_target_up{link="isp1",target="192.0.2.1",type="icmp"} 1
multihome_probe_target_up{link="isp1",target="192.0.2.2:443",type="tcp"} 0
# HELP multihome_probe_lost_total Probes to the target that got no valid answer.
# TYPE multihome_probe_lost_total counter
multihome_probe_lost_total{link="isp1",target="192.0.2.1",type="icmp"} 1
multihome_probe_lost_total{link="isp1",target="192.0.2.2:443",type="tcp"} 100
`
	names := []string{"multihome_link_state", "multihome_link_rtt_seconds", "multihome_link_rate_bytes_per_second",
		"multihome_probe_target_up", "multihome_probe_lost_total"}
	if err := testutil.CollectAndCompare(l, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// isp1 goes down: the next scrape says so, and the event is counted.
	s := sample()
	s[0].State, s[0].Health, s[0].TargetsUp = monitor.Down, monitor.Down, 0
	src.set(s...)
	l.Observe(monitor.Event{Kind: monitor.StateChanged, Link: "isp1", From: monitor.Up, To: monitor.Down})
	l.Observe(monitor.Event{Kind: monitor.SaturationChanged, Link: "isp1"}) // not a state change
	want = `
# HELP multihome_link_state_changes_total State changes of the link since the daemon started, by the state entered.
# TYPE multihome_link_state_changes_total counter
multihome_link_state_changes_total{link="isp1",to="degraded"} 0
multihome_link_state_changes_total{link="isp1",to="down"} 1
multihome_link_state_changes_total{link="isp1",to="unknown"} 0
multihome_link_state_changes_total{link="isp1",to="up"} 0
multihome_link_state_changes_total{link="isp2",to="degraded"} 0
multihome_link_state_changes_total{link="isp2",to="down"} 0
multihome_link_state_changes_total{link="isp2",to="unknown"} 0
multihome_link_state_changes_total{link="isp2",to="up"} 0
# HELP multihome_link_targets_up Number of the link's probe targets answering.
# TYPE multihome_link_targets_up gauge
multihome_link_targets_up{link="isp1"} 0
multihome_link_targets_up{link="isp2"} 0
`
	if err := testutil.CollectAndCompare(l, strings.NewReader(want),
		"multihome_link_state_changes_total", "multihome_link_targets_up"); err != nil {
		t.Error(err)
	}
	want = `
# HELP multihome_link_admin Operator override of the link: 1 for the current one (none, down, drain), 0 for the others.
# TYPE multihome_link_admin gauge
multihome_link_admin{admin="down",link="isp1"} 0
multihome_link_admin{admin="down",link="isp2"} 1
multihome_link_admin{admin="drain",link="isp1"} 0
multihome_link_admin{admin="drain",link="isp2"} 0
multihome_link_admin{admin="none",link="isp1"} 1
multihome_link_admin{admin="none",link="isp2"} 0
`
	if err := testutil.CollectAndCompare(l, strings.NewReader(want), "multihome_link_admin"); err != nil {
		t.Error(err)
	}
}

func TestReloads(t *testing.T) {
	r := NewReloads()
	r.Observe(nil)
	r.Observe(errors.New("bad"))
	r.Observe(errors.New("bad"))
	want := `
# HELP multihome_config_reloads_total Config reloads by result: success (applied) or failure (rejected, the old config stays in force).
# TYPE multihome_config_reloads_total counter
multihome_config_reloads_total{result="failure"} 2
multihome_config_reloads_total{result="success"} 1
# HELP multihome_config_last_reload_successful 1 if the last reload was applied (or none was tried), 0 if it was rejected.
# TYPE multihome_config_last_reload_successful gauge
multihome_config_last_reload_successful 0
`
	if err := testutil.CollectAndCompare(r, strings.NewReader(want),
		"multihome_config_reloads_total", "multihome_config_last_reload_successful"); err != nil {
		t.Error(err)
	}
}
