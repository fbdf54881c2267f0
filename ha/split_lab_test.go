package ha_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	"github.com/multihome/multihome/route"
)

// startSplitPair runs the two daemons of a split-uplinks pair lab.
func startSplitPair(t *testing.T, p *lab.Pair) [2]*pairNode {
	return startNodes(t, p, func(i int, run string) string { return p.SplitPairConfig(i, run, haAdvert()) })
}

// restarted holds when each node of the split pair test was last
// restarted (after a power loss): its links are judged from then on.
var restarted [2]time.Time

// ownISP returns the ISP whose handoff reaches gateway role.
func ownISP(p *lab.Pair, role string) lab.ISP {
	for _, isp := range p.ISPs {
		if p.Reaches(nodeIndex(role), isp) {
			return isp
		}
	}
	panic("no ISP for " + role)
}

// wanOf returns gateway role's own WAN address: the source the core sees
// for flows leaving by its ISP.
func wanOf(p *lab.Pair, role string) string {
	return p.Nodes[nodeIndex(role)].WAN[ownISP(p, role).Index-1].String()
}

// sources opens n new connections from the LAN host to the core's HTTP
// server and counts the sources the server saw (the ISP each left by);
// failures are counted under "error".
func sources(p *lab.Pair, n int) map[string]int {
	seen := map[string]int{}
	url := fmt.Sprintf("http://%s/ip", p.Servers.HTTP)
	for range n {
		src, err := p.GetFrom(p.Hosts[0].Name, netip.Addr{}, url, 2*time.Second)
		if err != nil {
			src = "error"
			if seen["error"] == 0 {
				fmt.Fprintf(os.Stderr, "%s: first failed connection: %v\n", time.Now().Format("15:04:05.000"), err)
			}
		}
		seen[src]++
	}
	return seen
}

// TestPairSplitUplinks runs two multihome daemons with the real
// keepalived and conntrackd in a split-uplinks pair lab (gwa has isp1,
// gwb has isp2, each reaches the other's over the sync link): new LAN
// flows use both ISPs while both nodes live, the partner's flows never
// loop back over the transit link, the partner's ISP failing takes the
// transit link out of use (its probes cross that ISP), and the master
// losing power leaves the flows that went through the partner's ISP
// alive on the partner, which takes the LAN over.
func TestPairSplitUplinks(t *testing.T) {
	for _, prog := range []string{"keepalived", "conntrackd", "conntrack", "nft", "ping"} {
		if _, err := exec.LookPath(prog); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + prog); err != nil {
				t.Skipf("%s not installed (scripts/deps.sh installs it)", prog)
			}
		}
	}
	p := labtest.UpSplitPair(t)
	nodes := startSplitPair(t, p)
	waitOneMaster(t, p, 15*time.Second)
	waitTransitUp(t, p, nodes)
	time.Sleep(time.Second) // the election settled, both roles reported
	settled := time.Now()
	t.Run("both ISPs", func(t *testing.T) { splitBothISPs(t, p) })
	t.Run("standby keeps carrying", func(t *testing.T) { splitStandbyCarries(t, p, settled) })
	t.Run("partner ISP fails", func(t *testing.T) { splitPartnerISPFails(t, p, nodes) })

	runs := 1
	if v, err := strconv.Atoi(os.Getenv("MULTIHOME_HA_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var recov []time.Duration
	survived, through, lost, own := 0, 0, 0, 0
	for run := range runs {
		r, s, th, l, o := splitPowerLoss(t, p, nodes, run, 40)
		recov = append(recov, r)
		survived, through, lost, own = survived+s, through+th, lost+l, own+o
	}
	report(t, "split uplinks, power loss: new LAN connections again after %v (median of %d: %v); flows through the partner's ISP survived %d/%d; flows through the dead master's own ISP lost %d/%d (by nature: its address is gone)",
		median(recov), runs, recov, survived, through, lost, own)
	if m := median(recov); m > time.Second && os.Getenv("MULTIHOME_HA_ADVERT") == "" {
		t.Errorf("median recovery %v, want ≤ 1 s", m)
	}
	if through == 0 || float64(survived) < 0.99*float64(through) {
		t.Errorf("%d/%d flows through the partner's ISP survived, want ≥ 99%%", survived, through)
	}
}

// waitTransitUp waits until both nodes' monitors judge every link up,
// the transit links included (their probes cross the partner's ISP).
// (A node restarted after a power loss is judged from restarted on.)
func waitTransitUp(t *testing.T, p *lab.Pair, nodes [2]*pairNode) {
	t.Helper()
	var down []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		down = nil
		for i, n := range nodes {
			for _, isp := range p.ISPs {
				if !n.upSince(isp.Name, restarted[i]) {
					down = append(down, n.role+"/"+isp.Name)
				}
			}
		}
		if len(down) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("links not judged up within 30 s: %v", down)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upSince reports whether the node's monitor, since the daemon started
// at since, last judged link up.
func (n *pairNode) upSince(link string, since time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	up := false
	for _, e := range n.events {
		if e.Link == link && !e.Time.Before(since) {
			up = e.To == monitor.Up
		}
	}
	return up
}

// splitBothISPs: while both nodes live, the master's new LAN flows leave
// by both ISPs (the partner's through the transit link), every one of
// them works (no flow the partner gets loops back), and the partner
// holds the flows it carries in its own conntrack table.
func splitBothISPs(t *testing.T, p *lab.Pair) {
	m := waitOneMaster(t, p, 10*time.Second)
	o := p.Other(m)
	seen := sources(p, 40)
	report(t, "split uplinks, both nodes live, %s master: 40 new LAN connections left by %v (%s: %s's isp%d, %s: %s's isp%d through the transit link)",
		m, seen, wanOf(p, m), m, ownISP(p, m).Index, wanOf(p, o), o, ownISP(p, o).Index)
	if seen["error"] > 0 {
		t.Errorf("%d of 40 new connections failed", seen["error"])
	}
	if seen[wanOf(p, m)] == 0 || seen[wanOf(p, o)] == 0 {
		t.Errorf("new flows left by %v: want both %s (the master's ISP) and %s (the partner's, over the transit link)", seen, wanOf(p, m), wanOf(p, o))
	}
	for src := range seen {
		if src != "error" && src != wanOf(p, m) && src != wanOf(p, o) {
			t.Errorf("a flow left with source %s: not an ISP address of the pair", src)
		}
	}
}

// splitStandbyCarries holds flows through the master, some of them
// through the standby's ISP, past conntrackd's purge timeout (60 s)
// after the standby stood down: the standby's kernel table keeps them
// (on shared uplinks the standby's table is flushed then: it carries
// nothing).
func splitStandbyCarries(t *testing.T, p *lab.Pair, settled time.Time) {
	m := waitOneMaster(t, p, 10*time.Second)
	o := p.Other(m)
	f, err := p.HoldFlows(t.Context(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(500 * time.Millisecond)
	viaStandby, err := p.ConntrackSourcePorts(t.Context(), o, "")
	if err != nil {
		t.Fatal(err)
	}
	until := settled.Add(65 * time.Second)
	time.Sleep(time.Until(until))
	time.Sleep(time.Second)
	alive := f.AliveEach(until)
	n, ok := 0, 0
	for i, port := range f.Ports() {
		if viaStandby[port] {
			n++
			if alive[i] {
				ok++
			}
		}
	}
	report(t, "split uplinks: flows through the standby %s alive %d/%d 65 s after it stood down", o, ok, n)
	if n == 0 || ok != n {
		t.Errorf("flows through the standby %s alive %d/%d past conntrackd's purge timeout: want all", o, ok, n)
	}
}

// splitPartnerISPFails cuts the standby's own ISP while both nodes live:
// the master's monitor judges its transit link down (the probes cross
// that ISP), new flows leave by the master's own ISP only, flows through
// it are untouched, and a packet the master still sends over the transit
// link is refused by the partner (unreachable), never sent back.
func splitPartnerISPFails(t *testing.T, p *lab.Pair, nodes [2]*pairNode) {
	m := waitOneMaster(t, p, 10*time.Second)
	o := p.Other(m)
	mine, theirs := ownISP(p, m), ownISP(p, o)
	f, err := p.HoldFlows(t.Context(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(500 * time.Millisecond)
	viaTransit, err := p.ConntrackSourcePorts(t.Context(), o, "")
	if err != nil {
		t.Fatal(err)
	}
	mn := nodes[nodeIndex(m)]
	mn.mu.Lock()
	logFrom := mn.log.Len()
	mn.mu.Unlock()
	start := time.Now()
	undo := cutISP(t, p, theirs)
	defer undo()
	waitFor(t, m+" judges its transit link ("+theirs.Name+") down", 10*time.Second, func() bool {
		_, ok := mn.downAt(theirs.Name, start)
		return ok
	})
	verdict := time.Since(start)
	waitFor(t, o+" judges its own ISP ("+theirs.Name+") down", 10*time.Second, func() bool {
		_, ok := nodes[nodeIndex(o)].downAt(theirs.Name, start)
		return ok
	})
	// The monitor's event reaches the test before the ruleset that
	// follows it is applied: wait until the master logs that ruleset
	// (new flows by its own ISP only), applied.
	applied := `msg="policy decision" subsystem=outbound policy=default type=weighted new_flows=` + mine.Name + `×1 reason="link ` + theirs.Name + ` state"`
	waitFor(t, m+" applies the ruleset without its transit link", 5*time.Second, func() bool {
		mn.mu.Lock()
		defer mn.mu.Unlock()
		return strings.Contains(mn.log.String()[logFrom:], applied)
	})
	seen := sources(p, 20)
	if seen[wanOf(p, m)] != 20 {
		t.Errorf("with %s's ISP cut, 20 new connections left by %v: want all by %s", o, seen, wanOf(p, m))
	}
	// A packet pinned to the transit link (as a probe is) reaches the
	// partner, which has no uplink left: it must not forward it at all
	// (not back over the transit link, where its policy's other member,
	// the transit link to this node, would send it).
	undoCount := countForward(t, p, o, lab.SyncIface)
	defer undoCount()
	mark := route.DefaultScheme.Mark(theirs.Index - 1)
	out, _ := p.Run(t.Context(), m, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-m", strconv.Itoa(int(mark)), p.Servers.HTTP.String()).CombinedOutput()
	if strings.Contains(string(out), " bytes from ") {
		t.Errorf("ping pinned to the transit link with %s's ISP cut was answered:\n%s", o, out)
	}
	if n := forwarded(t, p, o); n != 0 {
		t.Errorf("%s forwarded %d packets that came over the transit link back to it: a loop", o, n)
	}
	time.Sleep(time.Second)
	alive := f.AliveEach(start.Add(verdict))
	var mineAlive, mineN, theirsN int
	for i, port := range f.Ports() {
		if viaTransit[port] {
			theirsN++
			continue
		}
		mineN++
		if alive[i] {
			mineAlive++
		}
	}
	report(t, "split uplinks, %s's ISP (%s) cut: %s judged its transit link down %v later; new flows all by %s; held flows through %s's own ISP alive %d/%d (%d went through the cut ISP)",
		o, theirs.Name, m, verdict.Round(time.Millisecond), mine.Name, m, mineAlive, mineN, theirsN)
	if mineAlive != mineN || mineN == 0 {
		t.Errorf("flows through %s's own ISP alive %d/%d after the partner's ISP was cut: want all", m, mineAlive, mineN)
	}
	undo()
	waitTransitUp(t, p, nodes)
}

// countForward counts, in role's namespace, the packets forwarded from
// iface back out of iface, before any filter (priority -300).
func countForward(t *testing.T, p *lab.Pair, role, iface string) (undo func()) {
	t.Helper()
	cmd := p.Run(context.Background(), role, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("table inet splitloop { chain forward { type filter hook forward priority -300; policy accept; iifname %q oifname %q counter; }; }", iface, iface))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", role, err, out)
	}
	return func() { p.Run(context.Background(), role, "nft", "delete", "table", "inet", "splitloop").Run() }
}

// forwarded reads countForward's counter.
func forwarded(t *testing.T, p *lab.Pair, role string) int {
	t.Helper()
	out, err := p.Run(context.Background(), role, "nft", "list", "table", "inet", "splitloop").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list in %s: %v: %s", role, err, out)
	}
	_, after, ok := strings.Cut(string(out), "counter packets ")
	if !ok {
		t.Fatalf("no counter in %s", out)
	}
	n, _ := strconv.Atoi(strings.Fields(after)[0])
	return n
}

// cutISP drops everything ISP isp's router forwards, until undone.
func cutISP(t *testing.T, p *lab.Pair, isp lab.ISP) (undo func()) {
	t.Helper()
	cmd := netns.Command(context.Background(), isp.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet splitcut { chain forward { type filter hook forward priority 0; policy drop; }; }")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", isp.NS, err, out)
	}
	return func() {
		netns.Command(context.Background(), isp.NS, "nft", "delete", "table", "inet", "splitcut").Run()
	}
}

// splitPowerLoss holds n flows from the LAN host through the master,
// notes which went through the partner's ISP (they are in the partner's
// conntrack table), cuts the master's power and measures the first new
// connection and the survivors: every flow through the partner's ISP must
// survive; those through the master's own ISP cannot (its address is
// gone with it). The node is powered on and restarted afterwards.
func splitPowerLoss(t *testing.T, p *lab.Pair, nodes [2]*pairNode, run, n int) (rec time.Duration, survived, through, lost, own int) {
	m := waitOneMaster(t, p, 10*time.Second)
	o := p.Other(m)
	waitTransitUp(t, p, nodes)
	f, err := p.HoldFlows(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(1500 * time.Millisecond)
	viaPartner, err := p.ConntrackSourcePorts(t.Context(), o, "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := p.PowerOff(m); err != nil {
		t.Fatalf("power off %s: %v", m, err)
	}
	rec, err = p.FirstNewConnection(t.Context(), t0, 10*time.Second)
	if err != nil {
		t.Fatalf("run %d: after %s lost power: %v", run, m, err)
	}
	f.WaitSettled(t0.Add(rec), 15*time.Second)
	alive := f.AliveEach(t0.Add(rec))
	var broken []int
	for i, port := range f.Ports() {
		switch {
		case viaPartner[port] && alive[i]:
			through++
			survived++
		case viaPartner[port]:
			through++
			broken = append(broken, port)
		default:
			own++
			if !alive[i] {
				lost++
			}
		}
	}
	report(t, "run %d: %s lost power: new connections after %v; flows through %s's ISP alive %d/%d; flows through %s's own ISP lost %d/%d",
		run, m, rec.Round(time.Millisecond), o, survived, through, m, lost, own)
	if len(broken) > 0 {
		t.Logf("broken flows through %s (ports): %v", o, broken[:min(len(broken), 5)])
	}
	if err := p.PowerOn(m); err != nil {
		t.Fatal(err)
	}
	restarted[nodeIndex(m)] = time.Now()
	nodes[nodeIndex(m)].start()
	if seen := p.WatchMasters(3 * time.Second); !slices.EqualFunc(seen, [][]string{{o}}, slices.Equal) {
		t.Errorf("run %d: after %s came back, the LAN address was held by %v: want %s only", run, m, seen, o)
	}
	return rec, survived, through, lost, own
}
