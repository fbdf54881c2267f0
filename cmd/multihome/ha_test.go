package main

import (
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/ha"
)

func TestWriteHA(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	var b strings.Builder
	writeHA(&b, now, ha.Status{
		Node: "gwa", Partner: "gwb", Role: ha.RoleMaster, RoleSince: now.Add(-90 * time.Second),
		Priority: 120, LinksPoints: 20, LastTakeover: now.Add(-90 * time.Second), LastCommit: 9668 * time.Microsecond, Takeovers: 1,
		Sync: ha.SyncStatus{PartnerSeen: true, LastSeen: now.Add(-time.Second), Internal: 12, External: 104},
		Programs: []ha.ChildStatus{
			{Name: "conntrackd", Running: true, PID: 4242, Since: now.Add(-2 * time.Minute)},
			{Name: "keepalived", Running: true, PID: 4243, Since: now.Add(-50 * time.Second), Restarts: 1, LastExit: "signal: killed"},
		},
	})
	want := `HA
  node gwa: master for 1m30s, priority 120 (links +20)
  partner gwb: seen 1s ago; sync: 12 own flows, 104 of the partner's held
  last takeover 1m30s ago (1 in all), commit took 9.668ms
  conntrackd running (pid 4242) for 2m0s, 0 restarts
  keepalived running (pid 4243) for 50s, 1 restarts, last exit: signal: killed
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
