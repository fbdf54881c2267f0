package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// pairNode is one multihome daemon of a pair lab, run as a child process
// in its gateway's namespace.
type pairNode struct {
	t    *testing.T
	p    *lab.Pair
	role string
	conf string
	cmd  *exec.Cmd
	stop func()
	done chan struct{}

	mu     sync.Mutex
	log    bytes.Buffer
	events []monitor.Event
}

// nodeConfig is a pair node's config: two uplinks shared with the
// partner, probes at two core servers every 100 ms, VRRP at 100 ms.
func nodeConfig(p *lab.Pair, me, other int, runDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api: {listen: \"off\"}\ndefaults:\n  health: {interval: 100ms, down_after: 3, up_after: 3, hold_down: 1s}\nlinks:\n")
	for k, isp := range p.ISPs {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    gateway4: %s\n    address4: %s\n    probes: [{target: %s}, {target: %s}]\n",
			isp.Name, isp.WAN, isp.Router, p.Nodes[me].WAN[k], lab.ProbeTarget1, lab.ProbeTarget2)
	}
	n, o := p.Nodes[me], p.Nodes[other]
	advert := os.Getenv("MULTIHOME_HA_ADVERT") // bench/ha.sh compares keepalived's default 1s
	if advert == "" {
		advert = "100ms"
	}
	fmt.Fprintf(&b, "ha:\n  node: %s\n  partner: %s\n  advert_interval: %s\n  run_dir: %s\n", n.Role, o.Role, advert, runDir)
	fmt.Fprintf(&b, "  sync: {interface: %s, address: %s, partner: %s}\n", lab.SyncIface, n.Sync, o.Sync.Addr())
	fmt.Fprintf(&b, "  instances:\n    - {interface: %s, vrid: 51, virtual_addresses: [%s]}\n", lab.PairLANIface, p.LANVIP)
	for k, isp := range p.ISPs {
		fmt.Fprintf(&b, "    - {link: %s, vrid: %d, virtual_addresses: [%s]}\n", isp.Name, 52+k, p.WANVIP[k])
	}
	return b.String()
}

func startPair(t *testing.T, p *lab.Pair) [2]*pairNode {
	dir := t.TempDir()
	var nodes [2]*pairNode
	for i := range 2 {
		n := &pairNode{t: t, p: p, role: p.Nodes[i].Role, conf: filepath.Join(dir, p.Nodes[i].Role+".yaml")}
		if err := os.WriteFile(n.conf, []byte(nodeConfig(p, i, 1-i, filepath.Join(dir, "run-"+n.role))), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start()
		t.Cleanup(n.halt)
		nodes[i] = n
	}
	return nodes
}

// start runs the daemon; its events and log are kept.
func (n *pairNode) start() {
	t := n.t
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.cmd = n.p.Run(ctx, n.role, exe, "-test.run=^$")
	n.cmd.Env = append(os.Environ(), childEnv+"="+n.conf)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	n.cmd.Stderr = &lockedWriter{mu: &n.mu, w: &n.log}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() {
		dec := json.NewDecoder(stdout)
		for {
			var e monitor.Event
			if dec.Decode(&e) != nil {
				break
			}
			n.mu.Lock()
			n.events = append(n.events, e)
			n.mu.Unlock()
		}
		n.cmd.Wait()
		close(n.done)
	}()
}

// halt stops the daemon (SIGTERM, as on a clean stop) and shows its log
// when the test failed or runs verbose.
func (n *pairNode) halt() {
	if n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.stop()
		<-n.done
		n.t.Errorf("%s did not stop within 10 s of SIGTERM", n.role)
	}
	if n.t.Failed() || testing.Verbose() {
		n.mu.Lock()
		n.t.Logf("%s log:\n%s", n.role, n.log.String())
		n.mu.Unlock()
	}
}

// lastDown returns when the node's monitor last judged link down.
func (n *pairNode) downAt(link string, after time.Time) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e.Link == link && e.To == monitor.Down && e.Time.After(after) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// masters returns the gateways holding the LAN's virtual address.
func masters(t *testing.T, p *lab.Pair) []string {
	var out []string
	for _, n := range p.Nodes {
		has, err := p.Holds(n.Role, lab.PairLANIface, p.LANVIP.Addr())
		if err != nil {
			continue // a powered-off node's namespace is still there; errors mean no
		}
		if has {
			out = append(out, n.Role)
		}
	}
	return out
}

// waitOneMaster waits until exactly one gateway holds the LAN address.
func waitOneMaster(t *testing.T, p *lab.Pair, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if m := masters(t, p); len(m) == 1 {
			return m[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no single master within %s: %v", within, masters(t, p))
	return ""
}

// watchMasters samples who holds the LAN address every 10 ms for d and
// returns every distinct set seen, in order.
func watchMasters(t *testing.T, p *lab.Pair, d time.Duration) [][]string {
	var seen [][]string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		m := masters(t, p)
		if len(seen) == 0 || !slices.Equal(seen[len(seen)-1], m) {
			seen = append(seen, m)
		}
	}
	return seen
}

func other(role string) string {
	if role == lab.RoleGWA {
		return lab.RoleGWB
	}
	return lab.RoleGWA
}

func nodeIndex(role string) int {
	if role == lab.RoleGWA {
		return 0
	}
	return 1
}

// flows holds n TCP connections from a LAN host to the echo server open,
// each exchanging 8 bytes every 50 ms, and reports which ones broke.
type flows struct {
	conns []net.Conn
	mu    sync.Mutex
	err   []error
	last  []time.Time
	wg    sync.WaitGroup
	stop  chan struct{}
}

func holdFlows(t *testing.T, p *lab.Pair, n int) *flows {
	t.Helper()
	f := &flows{stop: make(chan struct{}), err: make([]error, n), last: make([]time.Time, n)}
	echo := netip.AddrPortFrom(p.Servers.Echo, 7).String()
	for i := range n {
		c, err := p.DialContext(context.Background(), p.Hosts[0].Name, "", "tcp", echo)
		if err != nil {
			f.close()
			t.Fatalf("flow %d: %v", i, err)
		}
		f.conns = append(f.conns, c)
	}
	for i, c := range f.conns {
		f.wg.Go(func() { f.talk(i, c) })
	}
	return f
}

func (f *flows) talk(i int, c net.Conn) {
	msg := []byte(fmt.Sprintf("%08d", i))
	buf := make([]byte, len(msg))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		_, err := c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		if err == nil && !bytes.Equal(buf, msg) {
			err = fmt.Errorf("echo %q, want %q", buf, msg)
		}
		f.mu.Lock()
		if err != nil {
			f.err[i] = err
			f.mu.Unlock()
			return
		}
		f.last[i] = time.Now()
		f.mu.Unlock()
	}
}

// alive counts the flows with no error and an echo after since.
func (f *flows) alive(since time.Time) (n int, errs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.conns {
		switch {
		case f.err[i] != nil:
			errs = append(errs, fmt.Sprintf("flow %d: %v", i, f.err[i]))
		case f.last[i].After(since):
			n++
		default:
			errs = append(errs, fmt.Sprintf("flow %d: no echo since %s", i, since.Format("15:04:05.000")))
		}
	}
	return n, errs
}

// settled reports whether every flow has echoed after since or failed.
func (f *flows) settled(since time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.conns {
		if f.err[i] == nil && !f.last[i].After(since) {
			return false
		}
	}
	return true
}

func (f *flows) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// firstNewConnection opens a new connection from the LAN host to the
// HTTP server every 20 ms (each given 300 ms) from start on, and returns
// when the first one opened after start succeeded, measured from start.
func firstNewConnection(p *lab.Pair, start time.Time, limit time.Duration) (time.Duration, error) {
	http := netip.AddrPortFrom(p.Servers.HTTP, 80).String()
	ok := make(chan time.Time, 1)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		wg.Go(func() {
			dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer dcancel()
			c, err := p.DialContext(dctx, p.Hosts[0].Name, "", "tcp", http)
			if err == nil {
				c.Close()
				select {
				case ok <- time.Now():
				default:
				}
			}
		})
		select {
		case at := <-ok:
			return at.Sub(start), nil
		case <-ctx.Done():
			return 0, fmt.Errorf("no new connection within %s", limit)
		case <-tick.C:
		}
	}
}

// conntrackMarks lists the ct marks of the echo flows in role's kernel.
func conntrackMarks(t *testing.T, p *lab.Pair, role string) map[string]int {
	out, err := p.Run(context.Background(), role, "conntrack", "-L", "-p", "tcp", "--dport", "7").Output()
	if err != nil {
		t.Logf("conntrack -L in %s: %v", role, err)
	}
	marks := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if m, ok := strings.CutPrefix(f, "mark="); ok {
				marks[m]++
			}
		}
	}
	return marks
}

// blackholeSource makes every ISP drop what its router receives from or
// for addr (a gateway's own WAN address: its probes) until undone.
func blackholeSource(t *testing.T, p *lab.Pair, isps []lab.ISP, addr netip.Addr) (undo func()) {
	t.Helper()
	rules := fmt.Sprintf("table inet hatest { chain pre { type filter hook prerouting priority -300; policy accept; ip saddr %s drop; ip daddr %s drop; }; }", addr, addr)
	for _, isp := range isps {
		cmd := netns.Command(context.Background(), isp.NS, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft in %s: %v: %s", isp.NS, err, out)
		}
	}
	return func() {
		for _, isp := range isps {
			netns.Command(context.Background(), isp.NS, "nft", "delete", "table", "inet", "hatest").Run()
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readStdout is used by bench/ha.sh to print a figure as one line.
func report(t *testing.T, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	t.Log(line)
	if f := os.Getenv("MULTIHOME_HA_REPORT"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(fh, line)
			fh.Close()
		}
	}
}

// TestPairSharedUplinks runs two multihome daemons with the real
// keepalived and conntrackd in a pair lab with two shared uplinks, and
// checks the "done when" points: a power loss of the master
// (new LAN connections again within 1 s median, at least 99 of 100 held
// TCP flows survive, their ct marks synced), a master whose uplinks all
// fail hands over within 1 s of the monitor's verdict, no role change
// when one uplink flaps, no takeback on recovery, and exactly one master
// when the sync link is cut.
func TestPairSharedUplinks(t *testing.T) {
	for _, prog := range []string{"keepalived", "conntrackd", "conntrack", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + prog); err != nil {
				t.Skipf("%s not installed (scripts/deps.sh installs it)", prog)
			}
		}
	}
	p := labtest.UpPair(t, lab.Spec{ISPs: 2})
	nodes := startPair(t, p)
	waitOneMaster(t, p, 15*time.Second)
	time.Sleep(2 * time.Second) // both nodes' links judged, sync up

	runs := 3
	if v, err := strconv.Atoi(os.Getenv("MULTIHOME_HA_RUNS")); err == nil && v > 0 {
		runs = v
	}
	flowsPer := 100
	var recov []time.Duration
	survived, total := 0, 0
	for run := range runs {
		r, alive := powerLoss(t, p, nodes, run, flowsPer)
		recov = append(recov, r)
		survived += alive
		total += flowsPer
	}
	report(t, "power loss: new LAN connections again after %v (median of %d: %v); held TCP flows survived: %d/%d (%.1f%%)",
		median(recov), runs, recov, survived, total, 100*float64(survived)/float64(total))
	if m := median(recov); m > time.Second && os.Getenv("MULTIHOME_HA_ADVERT") == "" {
		t.Errorf("median recovery %v, want ≤ 1 s", m)
	}
	if float64(survived) < 0.99*float64(total) {
		t.Errorf("%d/%d flows survived, want ≥ 99%%", survived, total)
	}
	t.Run("uplinks fail", func(t *testing.T) { uplinksFail(t, p, nodes) })
	t.Run("one uplink flaps", func(t *testing.T) { uplinkFlaps(t, p) })
	t.Run("split brain", func(t *testing.T) { splitBrain(t, p) })
}

// powerLoss holds flows through the master, cuts its power and measures
// how long new connections take to succeed again and how many flows
// survive; then it powers the node on again and checks that it does not
// take the role back.
func powerLoss(t *testing.T, p *lab.Pair, nodes [2]*pairNode, run, n int) (time.Duration, int) {
	m := waitOneMaster(t, p, 10*time.Second)
	f := holdFlows(t, p, n)
	defer f.close()
	time.Sleep(1500 * time.Millisecond) // conntrackd syncs the new flows
	before := conntrackMarks(t, p, m)
	t0 := time.Now()
	if err := p.PowerOff(m); err != nil {
		t.Fatalf("power off %s: %v", m, err)
	}
	rec, err := firstNewConnection(p, t0, 10*time.Second)
	if err != nil {
		t.Fatalf("run %d: after %s lost power: %v", run, m, err)
	}
	// Every flow must exchange data again after the takeover; TCP's
	// retransmission back-off decides when each one tries (seconds after
	// a long outage), so wait until each has either worked or failed.
	back := t0.Add(rec)
	var alive int
	var errs []string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		alive, errs = f.alive(back)
		if f.settled(back) {
			break
		}
	}
	after := conntrackMarks(t, p, other(m))
	report(t, "run %d: %s lost power: new connections after %v, %d/%d flows alive; ct marks of the echo flows on %s before %v, on %s after %v",
		run, m, rec.Round(time.Millisecond), alive, n, m, before, other(m), after)
	if len(errs) > 0 {
		t.Logf("broken flows: %v", errs[:min(len(errs), 5)])
	}
	for mark, c := range before {
		if mark != "0" && after[mark] < c*99/100 {
			t.Errorf("run %d: %d flows had ct mark %s on %s, %d on %s after the takeover: marks not synced", run, c, mark, m, after[mark], other(m))
		}
	}
	if err := p.PowerOn(m); err != nil {
		t.Fatal(err)
	}
	nodes[nodeIndex(m)].start()
	// Preemption is off: the recovered node stays backup.
	seen := watchMasters(t, p, 4*time.Second)
	if !slices.EqualFunc(seen, [][]string{{other(m)}}, slices.Equal) {
		t.Errorf("run %d: after %s came back, the LAN address was held by %v: want %s only (no takeback)", run, m, seen, other(m))
	}
	return rec, alive
}

// uplinksFail blackholes every probe of the master (its own WAN
// addresses) and measures the handover after the monitor's verdict.
func uplinksFail(t *testing.T, p *lab.Pair, nodes [2]*pairNode) {
	m := waitOneMaster(t, p, 10*time.Second)
	mi := nodeIndex(m)
	start := time.Now()
	var undos []func()
	for k, isp := range p.ISPs {
		undos = append(undos, blackholeSource(t, p, []lab.ISP{isp}, p.Nodes[mi].WAN[k]))
	}
	undo := func() {
		for _, u := range undos {
			u()
		}
	}
	defer undo()
	var verdict time.Time
	waitFor(t, "the master's monitor judges every uplink down", 10*time.Second, func() bool {
		verdict = time.Time{}
		for _, isp := range p.ISPs {
			at, ok := nodes[mi].downAt(isp.Name, start)
			if !ok {
				return false
			}
			if at.After(verdict) {
				verdict = at
			}
		}
		return true
	})
	var took time.Time
	waitFor(t, other(m)+" holds the LAN address", 5*time.Second, func() bool {
		ms := masters(t, p)
		took = time.Now()
		return slices.Equal(ms, []string{other(m)})
	})
	handover := took.Sub(verdict)
	report(t, "all uplinks of the master failed: handover %v after the monitor's verdict (verdict %v after the fault)",
		handover.Round(time.Millisecond), verdict.Sub(start).Round(time.Millisecond))
	if handover > time.Second {
		t.Errorf("handover %v after the verdict, want ≤ 1 s", handover)
	}
	undo()
	if seen := watchMasters(t, p, 5*time.Second); !slices.EqualFunc(seen, [][]string{{other(m)}}, slices.Equal) {
		t.Errorf("after %s's uplinks recovered, the LAN address was held by %v: want %s only (no takeback)", m, seen, other(m))
	}
}

// uplinkFlaps blackholes one uplink of the master's probes three times
// for 700 ms: the role must not move.
func uplinkFlaps(t *testing.T, p *lab.Pair) {
	m := waitOneMaster(t, p, 10*time.Second)
	done := make(chan [][]string)
	go func() { done <- watchMasters(t, p, 6*time.Second) }()
	for range 3 {
		undo := blackholeSource(t, p, p.ISPs[:1], p.Nodes[nodeIndex(m)].WAN[0])
		time.Sleep(700 * time.Millisecond)
		undo()
		time.Sleep(700 * time.Millisecond)
	}
	if seen := <-done; !slices.EqualFunc(seen, [][]string{{m}}, slices.Equal) {
		t.Errorf("one uplink of %s flapping moved the role: LAN address held by %v", m, seen)
	}
	report(t, "one uplink flapping 3 times: the role stayed on %s", m)
}

// splitBrain cuts the sync link with the LAN intact: VRRP on the LAN
// still elects exactly one master.
func splitBrain(t *testing.T, p *lab.Pair) {
	m := waitOneMaster(t, p, 10*time.Second)
	if err := p.SetLinkUp(lab.RoleGWA, lab.SyncIface, false); err != nil {
		t.Fatal(err)
	}
	defer p.SetLinkUp(lab.RoleGWA, lab.SyncIface, true)
	seen := watchMasters(t, p, 4*time.Second)
	if !slices.EqualFunc(seen, [][]string{{m}}, slices.Equal) {
		t.Errorf("sync link cut: LAN address held by %v, want exactly one master (%s) throughout", seen, m)
	}
	report(t, "sync link cut, LAN intact: exactly one master (%s) for 4 s", m)
}
