package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/ha"
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

func startPair(t *testing.T, p *lab.Pair) [2]*pairNode {
	return startNodes(t, p, func(i int, run string) string { return p.PairConfig(i, run, haAdvert()) })
}

// haAdvert is the VRRP advert interval of the pair tests: 100ms, or
// MULTIHOME_HA_ADVERT (bench/ha.sh compares keepalived's default 1s).
func haAdvert() string {
	if a := os.Getenv("MULTIHOME_HA_ADVERT"); a != "" {
		return a
	}
	return "100ms"
}

// startNodes runs the two daemons of pair lab p, node i with the config
// config(i, its run directory) returns.
func startNodes(t *testing.T, p *lab.Pair, config func(i int, run string) string) [2]*pairNode {
	dir := t.TempDir()
	var nodes [2]*pairNode
	for i := range 2 {
		n := &pairNode{t: t, p: p, role: p.Nodes[i].Role, conf: filepath.Join(dir, p.Nodes[i].Role+".yaml")}
		if err := os.WriteFile(n.conf, []byte(config(i, filepath.Join(dir, "run-"+n.role))), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start()
		t.Cleanup(n.halt)
		nodes[i] = n
	}
	return nodes
}

// client is an API client of the node's daemon (its socket is in the run
// directory startNodes gives it).
func (n *pairNode) client() (*api.Client, error) {
	return api.NewClient("unix:"+filepath.Join(filepath.Dir(n.conf), "run-"+n.role, "api.sock"), "")
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
	// The reader keeps its own cmd and done: a restart (after a power
	// loss) replaces n's while an old reader may still be draining.
	cmd, done := n.cmd, make(chan struct{})
	n.done = done
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
		cmd.Wait()
		close(done)
	}()
}

// halt stops the daemon (SIGTERM, as on a clean stop) and shows its log
// when the test failed or runs verbose.
func (n *pairNode) halt() {
	sent := time.Now()
	if n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.stop()
		<-n.done
		n.t.Errorf("%s did not stop within 10 s of SIGTERM (sent at %s)", n.role, sent.UTC().Format("15:04:05.000"))
	}
	if n.t.Failed() || testing.Verbose() {
		n.mu.Lock()
		n.t.Logf("%s log:\n%s", n.role, n.log.String())
		n.mu.Unlock()
	}
}

// waitSynced waits until the node's conntrackd holds, in its external
// cache (the partner's flows, committed on a takeover), a marked flow
// from each LAN source port in ports: the master's conntrackd has synced
// them and their ct marks.
func (n *pairNode) waitSynced(ports []int, within time.Duration) {
	t := n.t
	t.Helper()
	conf := filepath.Join(filepath.Dir(n.conf), "run-"+n.role, "conntrackd.conf")
	var missing []int
	var out []byte
	deadline := time.Now().Add(within)
	for {
		var err error
		out, err = n.p.Run(t.Context(), n.role, "conntrackd", "-C", conf, "-e").Output()
		synced := map[int]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			sport, marked := 0, false
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "sport="); ok && sport == 0 {
					sport, _ = strconv.Atoi(v)
				}
				if v, ok := strings.CutPrefix(f, "mark="); ok {
					marked = v != "0"
				}
			}
			if marked {
				synced[sport] = true
			}
		}
		missing = slices.DeleteFunc(slices.Clone(ports), func(port int) bool { return synced[port] })
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's conntrackd has not synced %d of %d held flows with their marks within %v (%v); external cache:\n%s",
				n.role, len(missing), len(ports), within, err, out)
		}
		time.Sleep(50 * time.Millisecond)
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

// waitOneMaster waits until exactly one gateway holds the LAN address.
func waitOneMaster(t *testing.T, p *lab.Pair, within time.Duration) string {
	t.Helper()
	m, err := p.WaitOneMaster(t.Context(), within)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func nodeIndex(role string) int {
	if role == lab.RoleGWA {
		return 0
	}
	return 1
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
	t.Run("status", func(t *testing.T) { status(t, p, nodes) })

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
	t.Run("reload", func(t *testing.T) { reload(t, p, nodes) })
}

// reload changes the master's VRRP priority: applied live (keepalived
// reloads its rendered config), the role stays; a changed sync link is
// refused and logged with the reason; a reload right before a stop does
// not delay it.
func reload(t *testing.T, p *lab.Pair, nodes [2]*pairNode) {
	m := waitOneMaster(t, p, 10*time.Second)
	n := nodes[nodeIndex(m)]
	orig, err := os.ReadFile(n.conf)
	if err != nil {
		t.Fatal(err)
	}
	sighup := func(text string) {
		if err := os.WriteFile(n.conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		n.cmd.Process.Signal(syscall.SIGHUP)
	}
	done := make(chan [][]string)
	go func() { done <- p.WatchMasters(3 * time.Second) }()
	sighup(strings.Replace(string(orig), "  advert_interval:", "  priority: 90\n  advert_interval:", 1))
	if seen := <-done; !slices.EqualFunc(seen, [][]string{{m}}, slices.Equal) {
		t.Errorf("reloading a new priority moved the role: %v", seen)
	}
	waitFor(t, "keepalived reloaded", 5*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		log := n.log.String()
		i := strings.LastIndex(log, "keepalived reloading its rendered config")
		return i >= 0 && strings.Contains(log[i:], "Reload complete")
	})
	bad := strings.Replace(string(orig), "  sync: {interface: sync0,", "  sync: {port: 3781, interface: sync0,", 1)
	sighup(bad)
	waitFor(t, "the sync change refused", 5*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return strings.Contains(n.log.String(), "conntrackd cannot reload")
	})
	// A SIGHUP right before the SIGTERM (a config pushed as the service
	// stops) does not hold the stop: the reload used to wait for
	// subsystems that had already stopped, 15 s and more.
	sighup(string(orig))
	began := time.Now()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		t.Logf("%s stopped %v after a SIGHUP then a SIGTERM", m, time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Errorf("%s not stopped 5 s after a SIGHUP then a SIGTERM", m)
	}
}

// status reads GET /api/v1/ha on both nodes: one master, one backup,
// each seeing its partner, both children running.
func status(t *testing.T, p *lab.Pair, nodes [2]*pairNode) {
	m := waitOneMaster(t, p, 10*time.Second)
	var sts [2]ha.Status
	waitFor(t, "both nodes see their partner", 10*time.Second, func() bool {
		for i, n := range nodes {
			c, err := n.client()
			if err != nil {
				t.Fatal(err)
			}
			if sts[i], err = c.HA(t.Context()); err != nil {
				return false
			}
		}
		return sts[0].Sync.PartnerSeen && sts[1].Sync.PartnerSeen
	})
	for i, st := range sts {
		want := ha.RoleBackup
		if p.Nodes[i].Role == m {
			want = ha.RoleMaster
		}
		if st.Role != want || st.Node != p.Nodes[i].Role || st.Partner != p.Nodes[1-i].Role || st.Priority != 120 {
			t.Errorf("%s: %+v, want role %s, priority 120", p.Nodes[i].Role, st, want)
		}
		for _, pr := range st.Programs {
			if !pr.Running || pr.Restarts != 0 {
				t.Errorf("%s: %s %+v", p.Nodes[i].Role, pr.Name, pr)
			}
		}
		if len(st.Programs) != 2 || st.Instances["lan"] != string(want) {
			t.Errorf("%s: programs %+v, instances %v", p.Nodes[i].Role, st.Programs, st.Instances)
		}
	}
	report(t, "status: %s master (takeovers %d, commit %v), partner seen on both; %s's external cache %d flows",
		m, sts[nodeIndex(m)].Takeovers, sts[nodeIndex(m)].LastCommit, p.Other(m), sts[1-nodeIndex(m)].Sync.External)
}

// powerLoss holds flows through the master, cuts its power and measures
// how long new connections take to succeed again and how many flows
// survive; then it powers the node on again and checks that it does not
// take the role back.
func powerLoss(t *testing.T, p *lab.Pair, nodes [2]*pairNode, run, n int) (time.Duration, int) {
	m := waitOneMaster(t, p, 10*time.Second)
	f, err := p.HoldFlows(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nodes[nodeIndex(p.Other(m))].waitSynced(f.Ports(), 10*time.Second)
	before, err := p.ConntrackMarks(t.Context(), m)
	if err != nil {
		t.Logf("conntrack -L in %s: %v", m, err)
	}
	t0 := time.Now()
	if err := p.PowerOff(m); err != nil {
		t.Fatalf("power off %s: %v", m, err)
	}
	rec, err := p.FirstNewConnection(t.Context(), t0, 10*time.Second)
	if err != nil {
		t.Fatalf("run %d: after %s lost power: %v", run, m, err)
	}
	// Every flow must exchange data again after the takeover; TCP's
	// retransmission back-off decides when each one tries (seconds after
	// a long outage), so wait until each has either worked or failed.
	alive, errs := f.WaitSettled(t0.Add(rec), 15*time.Second)
	after, err := p.ConntrackMarks(t.Context(), p.Other(m))
	if err != nil {
		t.Logf("conntrack -L in %s: %v", p.Other(m), err)
	}
	report(t, "run %d: %s lost power: new connections after %v, %d/%d flows alive; ct marks of the echo flows on %s before %v, on %s after %v",
		run, m, rec.Round(time.Millisecond), alive, n, m, before, p.Other(m), after)
	if len(errs) > 0 {
		t.Logf("broken flows: %v", errs[:min(len(errs), 5)])
	}
	for mark, c := range before {
		if mark != "0" && after[mark] < c*99/100 {
			t.Errorf("run %d: %d flows had ct mark %s on %s, %d on %s after the takeover: marks not synced", run, c, mark, m, after[mark], p.Other(m))
		}
	}
	if err := p.PowerOn(m); err != nil {
		t.Fatal(err)
	}
	nodes[nodeIndex(m)].start()
	// Preemption is off: the recovered node stays backup.
	seen := p.WatchMasters(4 * time.Second)
	if !slices.EqualFunc(seen, [][]string{{p.Other(m)}}, slices.Equal) {
		t.Errorf("run %d: after %s came back, the LAN address was held by %v: want %s only (no takeback)", run, m, seen, p.Other(m))
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
	waitFor(t, p.Other(m)+" holds the LAN address", 5*time.Second, func() bool {
		ms := p.Masters()
		took = time.Now()
		return slices.Equal(ms, []string{p.Other(m)})
	})
	handover := took.Sub(verdict)
	report(t, "all uplinks of the master failed: handover %v after the monitor's verdict (verdict %v after the fault)",
		handover.Round(time.Millisecond), verdict.Sub(start).Round(time.Millisecond))
	if handover > time.Second {
		t.Errorf("handover %v after the verdict, want ≤ 1 s", handover)
	}
	undo()
	if seen := p.WatchMasters(5 * time.Second); !slices.EqualFunc(seen, [][]string{{p.Other(m)}}, slices.Equal) {
		t.Errorf("after %s's uplinks recovered, the LAN address was held by %v: want %s only (no takeback)", m, seen, p.Other(m))
	}
}

// uplinkFlaps blackholes one uplink of the master's probes three times
// for 700 ms: the role must not move.
func uplinkFlaps(t *testing.T, p *lab.Pair) {
	m := waitOneMaster(t, p, 10*time.Second)
	done := make(chan [][]string)
	go func() { done <- p.WatchMasters(6 * time.Second) }()
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
	seen := p.WatchMasters(4 * time.Second)
	if !slices.EqualFunc(seen, [][]string{{m}}, slices.Equal) {
		t.Errorf("sync link cut: LAN address held by %v, want exactly one master (%s) throughout", seen, m)
	}
	report(t, "sync link cut, LAN intact: exactly one master (%s) for 4 s", m)
}
