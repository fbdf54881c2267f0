package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// frrRemoteID is FRR's discriminator of our side of its BFD session to
// peer (0 when FRR has none): it changes when we stop a session and
// start another, not when one session goes down and up again.
func frrRemoteID(f *lab.FRR, peer string) uint32 {
	out, err := f.Vtysh(context.Background(), "bfdd", "show bfd peers json")
	if err != nil {
		return 0
	}
	var ps []struct {
		Peer     string `json:"peer"`
		RemoteID uint32 `json:"remote-id"`
	}
	json.Unmarshal(out, &ps)
	for _, p := range ps {
		if p.Peer == peer {
			return p.RemoteID
		}
	}
	return 0
}

// bfdSources captures, for window, the BFD control packets ISP k's
// router receives from the gateway and returns their UDP source ports:
// one per session (RFC 5881: the source port is fixed per session).
func bfdSources(t *testing.T, l *lab.Lab, k int, from string, window time.Duration) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	cmd := l.Run(ctx, lab.RoleISP(k), "tcpdump", "-i", "gw0", "-n", "-l", "-q", "udp dst port 3784 and src host "+from)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	re := regexp.MustCompile(regexp.QuoteMeta(from) + `\.(\d+) > `)
	ports := map[string]int{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			ports[m[1]]++
		}
	}
	cmd.Wait()
	return ports
}

// TestLabBFDSharedSession is an ISP engineer's setup: the ISP router
// (FRR 8.4, eBGP with BFD 100 ms × 3) is both the link's next hop with
// link BFD and the BGP neighbour with neighbour BFD. There is one BFD
// session to it (one UDP source port on the wire, both users' metrics
// up); a first-hop cut takes the link down and withdraws and resets BGP
// by BFD's verdict (probes are slowed to 1 s × 3 so a fast verdict can
// only be BFD's), and both downs are in the decision log; a reload that
// removes one user keeps the session for the other (FRR sees the same
// session: its discriminator of our side is unchanged, and it stays up).
func TestLabBFDSharedSession(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	frr := startupFRR(t, l, 1)
	const (
		gw       = "198.51.100.2" // our address, FRR's BFD peer
		neighbor = "198.51.100.1"
	)
	timers := "min_tx: 100ms, min_rx: 100ms, multiplier: 3, hold_up: 1s"
	link := func(bfd bool) string {
		s := fmt.Sprintf("  - {name: isp1, interface: wan1, gateway4: %s, address4: %s, probes: [{target: %s}, {target: %s}], health: {interval: 1s, down_after: 3, up_after: 2, hold_down: 1s}",
			neighbor, gw, lab.ProbeTarget1, lab.ProbeTarget2)
		if bfd {
			s += ", bfd: {" + timers + "}"
		}
		return "links:\n" + s + "}\n"
	}
	bgp := func(bfd bool) string {
		s := "bgp:\n  asn: 64500\n  prefixes: [192.0.2.0/24]\n  connect_retry: 1s\n  hold_time: 9s\n  neighbors:\n    - {link: isp1, address: " + neighbor + ", asn: 64501"
		if bfd {
			s += ", bfd: {" + timers + "}"
		}
		return s + "}\n"
	}
	linkUp := `multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="up"} 1`
	nbUp := `multihome_bgp_bfd_up{link="isp1",neighbor="198.51.100.1"} 1`

	d := startLabDaemon(t, l, link(true)+bgp(true))
	d.wait(30*time.Second, "isp1 up", linkTo("isp1", monitor.Up))
	if _, ok := pollFor(60*time.Second, func() bool { return frrUp(frr, gw) }); !ok {
		t.Fatalf("FRR: BGP or BFD not up: %+v", (&bfdFRR{frr}).peer(gw))
	}
	d.bfdEstablished(neighbor, "isp1", time.Second)
	d.waitEstablished("isp1", neighbor, time.Second)
	m := d.metrics()
	if !strings.Contains(m, linkUp) || !strings.Contains(m, nbUp) {
		t.Fatalf("both users' sessions should be up:\n%s", grepLines(m, "bfd"))
	}
	// FRR 8.4 resets the session once BGP is up (docs/bfd.md): each
	// user's down not acted on is in the decision log with what was
	// made of it.
	unproven := sumMetric(m, "multihome_bfd_unproven_downs_total") + sumMetric(m, "multihome_bgp_bfd_unproven_downs_total")
	ev := d.get("/api/v1/events?link=isp1&limit=1000")
	logged := strings.Count(ev, "not acted on")
	t.Logf("BFD downs not acted on at start: %d counted, %d in the decision log", unproven, logged)
	if logged < unproven || unproven > 0 && !strings.Contains(ev, "link isp1 (up) left to its probes") {
		t.Errorf("%d BFD downs not acted on, %d in the decision log:\n%s", unproven, logged, ev)
	}
	// One session on the wire: one source port (100 ms × 3: ~10 packets
	// a second).
	ports := bfdSources(t, l, 1, gw, 2*time.Second)
	t.Logf("BFD packets to FRR by source port: %v", ports)
	if n := len(ports); n != 1 {
		t.Fatalf("%d BFD sessions on the wire to FRR (source ports %v), want 1", n, ports)
	}
	for _, c := range ports {
		if c < 5 {
			t.Errorf("only %d BFD packets in 2 s: the session is not at 100 ms", c)
		}
	}

	// A first-hop cut: BFD's verdict reaches both users.
	at := time.Now()
	undo := cutFirstHop(t, l, lab.RoleISP(1))
	down := d.wait(5*time.Second, "isp1 down", linkTo("isp1", monitor.Down))
	took := down.Time.Sub(at)
	t.Logf("first hop cut → isp1 down after %v (%s)", took.Round(time.Millisecond), down.Reason)
	if !strings.Contains(down.Reason, "BFD") || took > 2500*time.Millisecond {
		t.Errorf("isp1 down after %v for %q, want BFD's verdict (before the 1 s × 3 probes)", took, down.Reason)
	}
	bgpDown := `multihome_bgp_session_up{link="isp1",neighbor="198.51.100.1"} 0`
	if _, ok := pollFor(3*time.Second, func() bool { return strings.Contains(d.metrics(), bgpDown) }); !ok {
		t.Errorf("BGP session not reset after the BFD down:\n%s", grepLines(d.metrics(), "multihome_bgp_session_up"))
	}
	if _, ok := pollFor(3*time.Second, func() bool {
		ev = d.get("/api/v1/events?link=isp1&limit=1000")
		return strings.Count(ev, "path down after") >= 2 && strings.Contains(ev, `"to": "withdraw"`)
	}); !ok {
		t.Errorf("the decision log lacks the BFD downs of both users or the withdrawal:\n%s", ev)
	}
	// Each user's entry says what it did; whichever acted second found
	// the link already down.
	for _, want := range []string{"up: link isp1 taken down at once (it was ", "announcements withdrawn, BGP reset, link isp1 taken down at once (it was "} {
		if !strings.Contains(ev, want) {
			t.Errorf("decision log lacks %q:\n%s", want, ev)
		}
	}
	undo()
	d.wait(30*time.Second, "isp1 back up", linkTo("isp1", monitor.Up))
	if _, ok := pollFor(60*time.Second, func() bool { return frrUp(frr, gw) }); !ok {
		t.Fatalf("FRR: BGP or BFD not back: %+v", (&bfdFRR{frr}).peer(gw))
	}
	d.bfdEstablished(neighbor, "isp1", time.Second)

	// kept watches for window that FRR's session stays ours: the same
	// discriminator of our side, never an AdminDown from us (what a
	// stopped session sends), up at the end; and that no link goes down.
	// A detection expiry while the machine is loaded is logged, not
	// failed: it is not a session we stopped.
	kept := func(what string, id uint32, window time.Duration) {
		t.Helper()
		deadline := time.After(window)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case e, ok := <-d.events:
				if !ok {
					t.Fatalf("%s: multihome exited", what)
				}
				if e.Kind == monitor.StateChanged && e.To == monitor.Down {
					t.Errorf("%s: %s down: %s", what, e.Link, e.Reason)
				}
			case <-tick.C:
				p := (&bfdFRR{frr}).peer(gw)
				got := frrRemoteID(frr, gw)
				if got != 0 && got != id || strings.Contains(p.RemoteDiag, "administratively") {
					t.Fatalf("%s: FRR's session %+v, our discriminator %d (was %d): the session was stopped", what, p, got, id)
				}
				if p.Status != "up" {
					t.Logf("%s: FRR's session %+v (not ours to fail: no AdminDown, same discriminator)", what, p)
				}
			case <-deadline:
				if _, ok := pollFor(5*time.Second, func() bool { return (&bfdFRR{frr}).peer(gw).Status == "up" && frrRemoteID(frr, gw) == id }); !ok {
					t.Fatalf("%s: FRR's session %+v, our discriminator %d (was %d)", what, (&bfdFRR{frr}).peer(gw), frrRemoteID(frr, gw), id)
				}
				return
			}
		}
	}

	// The link's bfd removed: the neighbour's session is the same one.
	id := frrRemoteID(frr, gw)
	if id == 0 {
		t.Fatal("FRR shows no discriminator of our side")
	}
	d.reload(link(false) + bgp(true))
	kept("link bfd removed", id, 3*time.Second)
	m = d.metrics()
	if strings.Contains(m, `multihome_bfd_session_state{link="isp1"`) || !strings.Contains(m, nbUp) {
		t.Errorf("after removing the link's bfd:\n%s", grepLines(m, "bfd"))
	}

	// The link's bfd back (it joins the running session, up at once),
	// then the neighbour's removed: the link keeps the session. The
	// neighbour is re-created (its BGP session restarts); FRR may reset
	// BFD once BGP is back (its 8.4 quirk, a peer reset our link does
	// not act on), but the session stays ours.
	d.reload(link(true) + bgp(true))
	if m := d.metrics(); !strings.Contains(m, linkUp) {
		t.Errorf("the link's bfd, re-added, did not join the running session:\n%s", grepLines(m, "bfd_session_state"))
	}
	kept("link bfd re-added", id, time.Second)
	d.reload(link(true) + bgp(false))
	kept("neighbour bfd removed", id, 5*time.Second)
	if _, ok := pollFor(5*time.Second, func() bool { return strings.Contains(d.metrics(), linkUp) }); !ok {
		t.Errorf("the link's session is not up after removing the neighbour's bfd:\n%s", grepLines(d.metrics(), "bfd"))
	}
	if m := d.metrics(); strings.Contains(m, "multihome_bgp_bfd_up{") {
		t.Errorf("the neighbour still reports BFD:\n%s", grepLines(m, "multihome_bgp_bfd_up"))
	}
	t.Logf("BFD log:\n%s", grepLines(d.logText(), "bfd session"))
}
