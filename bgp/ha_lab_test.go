package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// haNodeYAML is one node of an HA pair sharing ISP 1's handoff: its own
// address on wan1 (the source of its probes and its BGP session).
func haNodeYAML(addr string) string {
	return fmt.Sprintf(`links:
  - name: wan1
    interface: wan1
    gateway4: 198.51.100.1
    address4: %s
    probes: [{target: %s}, {target: %s}, {target: %s}]
bgp:
  asn: 64500
  prefixes: [%s]
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501}
`, addr, lab.ProbeTarget1, lab.ProbeTarget2, lab.ProbeTarget3, sitePrefix4)
}

// frrSessions returns how many times FRR's session to peer was
// established and dropped.
func frrSessions(t *testing.T, f *frr, peer string) (established, dropped int) {
	t.Helper()
	out, err := f.vtysh("show bgp neighbors " + peer + " json")
	if err != nil {
		t.Fatalf("frr neighbour %s: %v", peer, err)
	}
	var r map[string]struct {
		Established int    `json:"connectionsEstablished"`
		Dropped     int    `json:"connectionsDropped"`
		State       string `json:"bgpState"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("frr neighbour %s: %v: %s", peer, err, out)
	}
	return r[peer].Established, r[peer].Dropped
}

// TestLabHARole: two speakers, the two nodes of an HA pair sharing ISP
// 1's handoff (198.51.100.2 and .3 on wan1), peer with ISP 1's FRR. Only
// the master's announcement reaches FRR; the standby's session is
// established and sends nothing. Flipping the roles (SetStandby, as the
// daemon does on keepalived's reports) moves FRR's route to the new
// master, and back, without any session being reset.
func TestLabHARole(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	const a, b = "198.51.100.2", "198.51.100.3"
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), fmt.Sprintf(`router bgp 64501
 bgp router-id 198.51.100.1
 no bgp ebgp-requires-policy
 neighbor %[1]s remote-as 64500
 neighbor %[1]s timers 3 9
 neighbor %[1]s timers connect 1
 neighbor %[2]s remote-as 64500
 neighbor %[2]s timers 3 9
 neighbor %[2]s timers connect 1
`, a, b), "bgpd")
	// Node B's own address on the shared handoff.
	if out, err := netns.Command(context.Background(), l.NS(lab.RoleGW), "ip", "addr", "add", b+"/28", "dev", "wan1").CombinedOutput(); err != nil {
		t.Fatalf("add %s: %v %s", b, err, out)
	}
	nodeA := startSpeaker(t, l, haNodeYAML(a)) // master from the start
	nodeB := startSpeaker(t, l, haNodeYAML(b), childStandbyEnv+"=1")
	nodeA.wait(5*time.Second, "wan1 up on A", isState("wan1", monitor.Up))
	nodeB.wait(5*time.Second, "wan1 up on B", isState("wan1", monitor.Up))
	if _, ok := pollUntil(15*time.Second, func() bool { return isp1.established(a) && isp1.established(b) }); !ok {
		t.Fatalf("sessions not established: A %v, B %v", isp1.established(a), isp1.established(b))
	}
	// The only path FRR holds is the master's.
	onlyFrom := func(peer string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		var best string
		var n int
		if _, ok := pollUntil(within, func() bool { best, n, _ = isp1.BestPeer(sitePrefix4); return best == peer && n == 1 }); !ok {
			t.Fatalf("FRR's paths to %s: best from %q of %d, want only %s's", sitePrefix4, best, n, peer)
		}
		return time.Since(start)
	}
	onlyFrom(a, 15*time.Second)
	// The standby sends nothing while its session stays up: no path from
	// it appears in a while.
	if _, ok := pollUntil(2*time.Second, func() bool { _, n, _ := isp1.BestPeer(sitePrefix4); return n != 1 }); ok {
		best, n, _ := isp1.BestPeer(sitePrefix4)
		t.Fatalf("the standby's announcement reached FRR: best from %s of %d paths", best, n)
	}
	estA, dropA := frrSessions(t, isp1, a)
	estB, dropB := frrSessions(t, isp1, b)

	for i, flip := range []struct {
		master, standby *child
		to              string
	}{{nodeB, nodeA, b}, {nodeA, nodeB, a}} {
		// The old master stands down first, then the new one takes over,
		// as keepalived reports them.
		fmt.Fprintln(flip.standby.Stdin, "standby")
		fmt.Fprintln(flip.master.Stdin, "master")
		took := onlyFrom(flip.to, 5*time.Second)
		t.Logf("flip %d: FRR's only path is from %s after %v", i+1, flip.to, took.Round(time.Millisecond))
	}
	if e, d := frrSessions(t, isp1, a); e != estA || d != dropA {
		t.Errorf("session to A reset by the role changes: established %d → %d, dropped %d → %d", estA, e, dropA, d)
	}
	if e, d := frrSessions(t, isp1, b); e != estB || d != dropB {
		t.Errorf("session to B reset by the role changes: established %d → %d, dropped %d → %d", estB, e, dropB, d)
	}
	// Each role change is logged as an announcement change with its reason.
	for _, n := range []struct {
		c    *child
		want []string
	}{
		{nodeA, []string{"action=withdraw", "action=announce"}},
		{nodeB, []string{"action=announce", "action=withdraw"}},
	} {
		for _, w := range n.want {
			if !logLine(n.c.log(), "bgp announcement changed", w, "reason=\"ha: ") {
				t.Errorf("no %q announcement change for the role in the log:\n%s", w, n.c.log())
			}
		}
	}
	if !strings.Contains(nodeB.log(), "this node is the standby") {
		t.Errorf("B's start as standby is not in its decisions")
	}
}
