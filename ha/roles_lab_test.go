package ha_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// siteRoute4 is the prefix both nodes of the pair originate to ISP 1.
const siteRoute4 = "192.0.2.0/24"

// frrBest returns the neighbour FRR's best path to prefix comes from,
// and how many paths it holds.
func frrBest(f *lab.FRR, prefix string) (peer string, paths int) {
	out, err := f.Vtysh(context.Background(), "bgpd", "show bgp ipv4 unicast "+prefix+" json")
	if err != nil {
		return "", 0
	}
	var r struct {
		Paths []struct {
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
			Bestpath *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
		} `json:"paths"`
	}
	if json.Unmarshal(out, &r) != nil {
		return "", 0
	}
	for _, p := range r.Paths {
		if p.Bestpath != nil && p.Bestpath.Overall {
			peer = p.Peer.PeerID
		}
	}
	return peer, len(r.Paths)
}

// frrConnections returns how many times FRR's session to peer was
// established and dropped, and its state.
func frrConnections(t *testing.T, f *lab.FRR, peer string) (established, dropped int, state string) {
	t.Helper()
	out, err := f.Vtysh(context.Background(), "bgpd", "show bgp neighbors "+peer+" json")
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
	return r[peer].Established, r[peer].Dropped, r[peer].State
}

// TestPairBGPFollowsRole: both nodes of a pair (real keepalived and
// conntrackd) run BGP to ISP 1's FRR over the shared handoff, each from
// its own address. Only the master's announcement reaches FRR while the
// standby's session stays established. The master's LAN interface goes
// down: keepalived moves the role (fault on the old master), and FRR's
// route moves to the new master over sessions that never reset; each
// node's decision log has its role change and its BGP decision.
func TestPairBGPFollowsRole(t *testing.T) {
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
	p := labtest.UpPair(t, lab.Spec{ISPs: 2})
	isp := p.ISPs[0]
	conf := fmt.Sprintf("router bgp 64501\n bgp router-id %s\n no bgp ebgp-requires-policy\n", isp.Router)
	for _, n := range p.Nodes {
		conf += fmt.Sprintf(" neighbor %[1]s remote-as 64500\n neighbor %[1]s timers 3 9\n neighbor %[1]s timers connect 1\n", n.WAN[0])
	}
	frr, err := lab.StartFRRIn(context.Background(), isp.NS, p.FRRName(isp.Name), conf, "bgpd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := frr.Stop(); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	var nodes [2]*pairNode
	for i := range 2 {
		n := &pairNode{t: t, p: p, role: p.Nodes[i].Role, conf: filepath.Join(dir, p.Nodes[i].Role+".yaml")}
		yaml := p.PairConfig(i, filepath.Join(dir, "run-"+n.role), "100ms") + fmt.Sprintf(`bgp:
  asn: 64500
  prefixes: [%s]
  connect_retry: 1s
  neighbors:
    - {link: %s, address: %s, asn: 64501}
`, siteRoute4, isp.Name, isp.Router)
		if err := os.WriteFile(n.conf, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start()
		t.Cleanup(n.halt)
		nodes[i] = n
	}
	master := waitOneMaster(t, p, 15*time.Second)
	mi := nodeIndex(master)
	standby := p.Other(master)
	addr := func(i int) string { return p.Nodes[i].WAN[0].String() }
	waitFor(t, "both sessions established", 20*time.Second, func() bool {
		_, _, a := frrConnections(t, frr, addr(0))
		_, _, b := frrConnections(t, frr, addr(1))
		return a == "Established" && b == "Established"
	})
	only := func(i int, within time.Duration) time.Time {
		t.Helper()
		var best string
		var n int
		deadline := time.Now().Add(within)
		for {
			if best, n = frrBest(frr, siteRoute4); best == addr(i) && n == 1 {
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("FRR's paths to %s: best from %q of %d, want only %s's (%s)", siteRoute4, best, n, p.Nodes[i].Role, addr(i))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	only(mi, 10*time.Second)
	time.Sleep(time.Second)
	if best, n := frrBest(frr, siteRoute4); n != 1 {
		t.Fatalf("the standby %s announces too: best from %s of %d paths", standby, best, n)
	}
	var est, drop [2]int
	for i := range 2 {
		est[i], drop[i], _ = frrConnections(t, frr, addr(i))
	}

	// The master loses its LAN: keepalived's interface tracking puts it
	// in fault, the partner takes the role.
	at := time.Now()
	if err := p.SetLinkUp(master, lab.PairLANIface, false); err != nil {
		t.Fatal(err)
	}
	moved := only(1-mi, 10*time.Second)
	report(t, "master %s lost its LAN → FRR's only path to %s from the new master %s after %v", master, siteRoute4, standby, moved.Sub(at).Round(time.Millisecond))
	if err := p.SetLinkUp(master, lab.PairLANIface, true); err != nil {
		t.Fatal(err)
	}
	// Back from fault the old master is the backup (preemption off): the
	// route stays with the new master.
	time.Sleep(2 * time.Second)
	if best, n := frrBest(frr, siteRoute4); best != addr(1-mi) || n != 1 {
		t.Errorf("after the old master's LAN came back: best from %s of %d paths, want only %s", best, n, addr(1-mi))
	}
	for i := range 2 {
		e, d, st := frrConnections(t, frr, addr(i))
		if e != est[i] || d != drop[i] || st != "Established" {
			t.Errorf("session to %s reset by the role change: established %d → %d, dropped %d → %d, now %s", p.Nodes[i].Role, est[i], e, drop[i], d, st)
		}
	}
	// The decision logs: each node's role change and its BGP decision.
	for i, want := range map[int][]string{mi: {"ha master->fault", "bgp announce->withdraw"}, 1 - mi: {"ha backup->master", "bgp withdraw->announce"}} {
		c, err := api.NewClient("unix:"+filepath.Join(dir, "run-"+p.Nodes[i].Role, "api.sock"), "")
		if err != nil {
			t.Fatal(err)
		}
		ev, err := c.Events(t.Context(), 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ev.Events {
			if e.Kind == "ha" || e.Kind == "bgp" && e.From != "" {
				got = append(got, e.Kind+" "+e.From+"->"+e.To)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s's decision log has no %q: %v", p.Nodes[i].Role, w, got)
			}
		}
	}
}
