package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// The chaos soak (bench/chaos.sh MINUTES; one minute in make test): a
// 3-ISP lab with LAN traffic, random faults, reloads and daemon kills,
// and the invariants a gateway must keep, checked over the whole run and
// printed as a table (docs/chaos.md).
const (
	// connBound is how long new LAN connections may keep failing while a
	// link is healthy: the monitor's slowest detection (loss is judged
	// over a window of at least 37 probes, 3.7 s at chaosConfig's 10
	// probes a second: 2 targets every 200 ms; a blackhole or carrier
	// loss takes 0.3-0.7 s) plus the client's 1 s request timeout plus
	// 1 s margin. (It was 4.5 s, from 15 probes a second, which is not
	// this config's rate: 30 % loss judged degraded after 2.3-3.8 s was
	// measured, so five failed 1 s requests in a row were possible.)
	connBound = 37*time.Second/10 + time.Second + time.Second
	// lossWindow is how long a 30 % loss fault is held.
	lossWindow = 15 * time.Second
	// heldFlows is the number of long-lived TCP connections kept open.
	heldFlows = 6
)

// chaosConfig is a 3-link config for the lab l with weights w.
func chaosConfig(l *lab.Lab, w [3]int, bad bool) string {
	var b strings.Builder
	interval := "200ms"
	if bad {
		interval = "fast" // refused
	}
	fmt.Fprintf(&b, `log: {level: info}
defaults:
  health:
    interval: %s
    down_after: 3
    up_after: 5
    hold_down: 2s
    min_targets_up: 1
    degraded: {loss: 10%%, rtt: 150ms}
    recovered: {loss: 5%%, rtt: 100ms}
links:
`, interval)
	for i, isp := range l.ISPs {
		fmt.Fprintf(&b, "  - {name: %s, interface: %s, gateway4: %s, address4: %s, weight: %d, capacity: {down: 20Mbit, up: 20Mbit}, probes: [{target: %s}, {target: %s}]}\n",
			isp.Name, isp.WAN, isp.Router, isp.GW, w[i], lab.ProbeTarget1, lab.ProbeTarget2)
	}
	return b.String()
}

// chaosRun is the state of one soak.
type chaosRun struct {
	t     *testing.T
	l     *lab.Lab
	path  string
	dir   string
	start time.Time

	mu sync.Mutex
	// faults: per ISP, the intervals it was broken (end zero: still).
	faults map[string][]span
	// down: intervals the daemon was not running (kill → links up again).
	down []span
	// loss windows: per ISP, when it had constant 30 % loss.
	loss map[string][]span
	// events of every daemon process, in order.
	events []monitor.Event
	// results
	conns      []connResult
	flowDeaths []flowDeath
	flowsOK    int
	unknownLnk int
	restarts   int
	stateEq    int
	stateDiff  []string
	reloadsOK  int
	reloadsBad int
	reloadErrs []string
	faultCount map[string]int
	samples    []sample

	d *chaosDaemon
}

type span struct{ from, to time.Time }

func (s span) overlaps(a, b time.Time) bool {
	to := s.to
	if to.IsZero() {
		to = time.Now().Add(time.Hour)
	}
	return s.from.Before(b) && a.Before(to)
}

type connResult struct {
	at time.Time
	ok bool
}

type flowDeath struct {
	link            string
	opened, died    time.Time
	err             string
	explained       bool
	explainedReason string
}

type sample struct {
	pid                  int
	at                   time.Time
	goroutines, fds, rss int
}

// chaosDaemon is one multihome process.
type chaosDaemon struct {
	cmd   *exec.Cmd
	api   string
	pid   int
	state map[string]monitor.State
	mu    sync.Mutex
	log   strings.Builder
	done  chan struct{}
}

func (r *chaosRun) startDaemon() *chaosDaemon {
	r.t.Helper()
	d := &chaosDaemon{api: filepath.Join(r.dir, "api.sock"), state: map[string]monitor.State{}, done: make(chan struct{})}
	cmd := r.l.Run(context.Background(), "gw", binary, "run", "--config", r.path, "--events", "-")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.log.Len() < 4<<20 {
			d.log.Write(b)
		}
		return len(b), nil
	})
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	d.cmd, d.pid = cmd, cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e monitor.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			d.mu.Lock()
			if e.Kind == monitor.StateChanged {
				d.state[e.Link] = e.To
			}
			d.mu.Unlock()
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}
		cmd.Wait()
		close(d.done)
	}()
	return d
}

func (d *chaosDaemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *chaosDaemon) allUp(links []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range links {
		if d.state[l] != monitor.Up {
			return false
		}
	}
	return true
}

func (d *chaosDaemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// TestChaos is the chaos soak; MULTIHOME_CHAOS_MINUTES sets its length
// (default 1).
func TestChaos(t *testing.T) {
	requireRoot(t)
	minutes := 1.0
	if v := os.Getenv("MULTIHOME_CHAOS_MINUTES"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("MULTIHOME_CHAOS_MINUTES=%q: want a positive number", v)
		}
		minutes = f
	}
	length := time.Duration(minutes * float64(time.Minute))
	l := labtest.Up(t, lab.Spec{ISPs: 3})
	r := &chaosRun{t: t, l: l, dir: t.TempDir(), faults: map[string][]span{}, loss: map[string][]span{}, faultCount: map[string]int{}}
	r.path = filepath.Join(r.dir, "multihome.yaml")
	w := [3]int{1, 1, 1}
	r.writeConfig(w, false)
	r.d = r.startDaemon()
	links := []string{"isp1", "isp2", "isp3"}
	r.waitUp(links, 15*time.Second)
	r.start = time.Now()
	defer func() {
		syscall.Kill(r.d.pid, syscall.SIGTERM)
		select {
		case <-r.d.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(r.d.pid, syscall.SIGKILL)
		}
		l.RestoreAll()
		if t.Failed() {
			t.Logf("last daemon's log (tail):\n%s", tail(r.d.logText(), 6000))
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), length)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.shortConns(ctx) })
	for i := range heldFlows {
		wg.Go(func() { r.heldFlow(ctx, i) })
	}
	wg.Go(func() { r.sampleResources(ctx) })
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	nextReload := time.Now().Add(time.Duration(5+rng.IntN(10)) * time.Second)
	nextRestart := time.Now().Add(time.Duration(20+rng.IntN(20)) * time.Second)
	for ctx.Err() == nil {
		switch {
		case time.Now().After(nextRestart):
			r.restart(links, w)
			nextRestart = time.Now().Add(time.Duration(30+rng.IntN(30)) * time.Second)
		case time.Now().After(nextReload):
			bad := rng.IntN(3) == 0
			if !bad {
				w[rng.IntN(3)] = 1 + rng.IntN(3)
			}
			r.reload(w, bad)
			nextReload = time.Now().Add(time.Duration(5+rng.IntN(15)) * time.Second)
		default:
			r.fault(rng)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(1000+rng.IntN(4000)) * time.Millisecond):
		}
	}
	wg.Wait()
	r.restoreAll()
	r.report(t, length)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (r *chaosRun) writeConfig(w [3]int, bad bool) {
	cfg := chaosConfig(r.l, w, bad) + fmt.Sprintf("api: {listen: \"unix:%s/api.sock\"}\n", r.dir)
	if err := os.WriteFile(r.path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *chaosRun) waitUp(links []string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !r.d.allUp(links) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// broken reports whether isp has an open fault (other than saturation).
func (r *chaosRun) broken(isp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.faults[isp]
	return len(f) > 0 && f[len(f)-1].to.IsZero()
}

func (r *chaosRun) setBroken(isp string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.faults[isp]
	switch {
	case on && (len(f) == 0 || !f[len(f)-1].to.IsZero()):
		r.faults[isp] = append(f, span{from: time.Now()})
	case !on && len(f) > 0 && f[len(f)-1].to.IsZero():
		f[len(f)-1].to = time.Now()
	}
}

// fault breaks a healthy ISP (at most two at once) or repairs a broken
// one: blackhole, 30 % round-trip loss (held lossWindow), carrier loss,
// saturation (1 Mbit/s: the link stays usable), or a flap (carrier down
// for 300 ms).
func (r *chaosRun) fault(rng *rand.Rand) {
	var healthy, faulted []string
	for _, isp := range r.l.ISPs {
		if r.broken(isp.Name) {
			faulted = append(faulted, isp.Name)
		} else {
			healthy = append(healthy, isp.Name)
		}
	}
	if len(faulted) > 0 && (len(healthy) <= 1 || rng.IntN(2) == 0) {
		isp := faulted[rng.IntN(len(faulted))]
		r.mu.Lock()
		lw := r.loss[isp]
		inLoss := len(lw) > 0 && lw[len(lw)-1].to.IsZero()
		lossOver := inLoss && time.Since(lw[len(lw)-1].from) >= lossWindow
		r.mu.Unlock()
		if inLoss && !lossOver {
			return // held for the whole window
		}
		r.l.Restore(isp)
		r.setBroken(isp, false)
		if inLoss {
			r.mu.Lock()
			r.loss[isp][len(r.loss[isp])-1].to = time.Now()
			r.mu.Unlock()
		}
		return
	}
	isp := healthy[rng.IntN(len(healthy))]
	var f lab.Fault
	kind := []string{"blackhole", "loss", "carrier", "saturation", "flap"}[rng.IntN(5)]
	switch kind {
	case "blackhole":
		f = lab.Fault{Kind: lab.Blackhole}
	case "loss":
		f = lab.Fault{Kind: lab.Loss, LossPercent: 16} // each way: ~30 % round trip
	case "carrier", "flap":
		f = lab.Fault{Kind: lab.CarrierDown}
	case "saturation":
		f = lab.Fault{Kind: lab.RateLimit, Rate: "1Mbit"}
	}
	r.mu.Lock()
	r.faultCount[kind]++
	r.mu.Unlock()
	if kind != "saturation" {
		r.setBroken(isp, true)
	}
	if _, err := r.l.Fault(isp, f); err != nil {
		r.t.Errorf("fault %s on %s: %v", kind, isp, err)
		return
	}
	switch kind {
	case "saturation":
		time.AfterFunc(3*time.Second, func() { r.l.Restore(isp, lab.RateLimit) })
	case "flap":
		time.Sleep(300 * time.Millisecond)
		r.l.Restore(isp)
		r.setBroken(isp, false)
	case "loss":
		r.mu.Lock()
		r.loss[isp] = append(r.loss[isp], span{from: time.Now()})
		r.mu.Unlock()
	}
}

func (r *chaosRun) restoreAll() {
	for _, isp := range r.l.ISPs {
		r.setBroken(isp.Name, false)
		r.mu.Lock()
		if lw := r.loss[isp.Name]; len(lw) > 0 && lw[len(lw)-1].to.IsZero() {
			lw[len(lw)-1].to = time.Now()
		}
		r.mu.Unlock()
	}
	r.l.RestoreAll()
}

// reload rewrites the config (valid, or with a bad field) and sends
// SIGHUP; the daemon must apply or refuse it and keep running.
func (r *chaosRun) reload(w [3]int, bad bool) {
	r.writeConfig(w, bad)
	okBefore := strings.Count(r.d.logText(), `msg="config reloaded"`)
	badBefore := strings.Count(r.d.logText(), `msg="reload rejected`)
	syscall.Kill(r.d.pid, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		log := r.d.logText()
		ok, rej := strings.Count(log, `msg="config reloaded"`) > okBefore, strings.Count(log, `msg="reload rejected`) > badBefore
		if ok || rej {
			r.mu.Lock()
			if ok == !bad && r.d.alive() {
				if bad {
					r.reloadsBad++
				} else {
					r.reloadsOK++
				}
			} else {
				r.reloadErrs = append(r.reloadErrs, fmt.Sprintf("%s: bad=%v applied=%v alive=%v", time.Now().Format("15:04:05"), bad, ok, r.d.alive()))
			}
			r.mu.Unlock()
			r.writeConfig(w, false) // a restart must find a good file
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	r.reloadErrs = append(r.reloadErrs, fmt.Sprintf("%s: no outcome logged for bad=%v", time.Now().Format("15:04:05"), bad))
	r.mu.Unlock()
	r.writeConfig(w, false)
}

var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// kernelState is the gateway's multihome state: its nftables table, ip
// rules and routes (counters left out: nft -s, and the regexp for anything else).
func (r *chaosRun) kernelState() string {
	ctx := context.Background()
	var b strings.Builder
	for _, argv := range [][]string{
		{"nft", "-s", "list", "table", "inet", "multihome"},
		{"ip", "-4", "rule", "show"}, {"ip", "-6", "rule", "show"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
	} {
		out, _ := r.l.Run(ctx, "gw", argv...).CombinedOutput()
		b.WriteString(strings.Join(argv, " ") + "\n" + counters.ReplaceAllString(string(out), "counter") + "\n")
	}
	return b.String()
}

// restart repairs every link, waits for them all up, records the kernel
// state, SIGKILLs the daemon, starts it again and compares the state it
// converges to.
func (r *chaosRun) restart(links []string, w [3]int) {
	r.restoreAll()
	if !r.waitUp(links, 20*time.Second) {
		r.mu.Lock()
		r.stateDiff = append(r.stateDiff, "links not all up before a kill: skipped")
		r.mu.Unlock()
		return
	}
	time.Sleep(1500 * time.Millisecond)
	before := r.kernelState()
	killed := time.Now()
	syscall.Kill(r.d.pid, syscall.SIGKILL)
	<-r.d.done
	r.d = r.startDaemon()
	up := r.waitUp(links, 20*time.Second)
	time.Sleep(1500 * time.Millisecond)
	after := r.kernelState()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = append(r.down, span{from: killed, to: time.Now()})
	r.restarts++
	switch {
	case !up:
		r.stateDiff = append(r.stateDiff, fmt.Sprintf("%s: links not all up 20 s after the restart", killed.Format("15:04:05")))
	case before != after:
		r.stateDiff = append(r.stateDiff, fmt.Sprintf("%s: kernel state differs after the restart:\n%s", killed.Format("15:04:05"), diffLines(before, after)))
	default:
		r.stateEq++
	}
}

func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(s string, l []string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range as {
		if !in(l, bs) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !in(l, as) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// shortConns opens a new LAN connection every 100 ms.
func (r *chaosRun) shortConns(ctx context.Context) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := r.l.Get(cctx, "lan1", "", "/ip")
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, connResult{at: time.Now(), ok: err == nil})
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// heldFlow keeps one TCP connection to the echo server open, echoing a
// line every 250 ms; when it dies, the death is recorded with the link it
// was on and a new one is opened.
func (r *chaosRun) heldFlow(ctx context.Context, i int) {
	echo := net.JoinHostPort(lab.EchoServer, "7")
	for ctx.Err() == nil {
		c, err := r.l.DialContext(ctx, "lan1", "", "tcp", echo)
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		opened := time.Now()
		link := r.linkOf(c)
		rd := bufio.NewReader(c)
		var ferr error
		for ctx.Err() == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, ferr = fmt.Fprintf(c, "flow %d\n", i); ferr != nil {
				break
			}
			if _, ferr = rd.ReadString('\n'); ferr != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		c.Close()
		r.mu.Lock()
		if ctx.Err() != nil {
			r.flowsOK++
		} else if link == "" {
			r.unknownLnk++
		} else {
			r.flowDeaths = append(r.flowDeaths, flowDeath{link: link, opened: opened, died: time.Now(), err: ferr.Error()})
		}
		r.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

// linkOf finds the link a LAN connection left by: the address the
// gateway translated it to, in its conntrack table.
func (r *chaosRun) linkOf(c net.Conn) string {
	port := strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port)
	for range 10 {
		out, _ := r.l.Run(context.Background(), "gw", "conntrack", "-L", "-p", "tcp", "--sport", port, "--dport", "7").CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			var dsts []string
			for _, x := range f {
				if v, ok := strings.CutPrefix(x, "dst="); ok {
					dsts = append(dsts, v)
				}
			}
			if len(dsts) == 2 {
				for _, isp := range r.l.ISPs {
					if isp.GW.String() == dsts[1] {
						return isp.Name
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ""
}

// sampleResources reads the daemon's goroutines (from /metrics), open
// files and RSS every 5 s.
func (r *chaosRun) sampleResources(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		d := r.d
		r.mu.Unlock()
		s := sample{pid: d.pid, at: time.Now()}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid)); err == nil {
			s.fds = len(ents)
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					s.rss, _ = strconv.Atoi(strings.Fields(v)[0])
				}
			}
		}
		if page, err := scrapeSock(d.api); err == nil { // not while restarting
			if v := metricValue(page, "go_goroutines"); v >= 0 {
				s.goroutines = int(v)
			}
		}
		if s.fds > 0 && s.goroutines > 0 {
			r.mu.Lock()
			r.samples = append(r.samples, s)
			r.mu.Unlock()
		}
	}
}

// anyHealthy reports whether some ISP had no fault during all of [a, b].
func (r *chaosRun) anyHealthy(a, b time.Time) bool {
	for _, isp := range r.l.ISPs {
		ok := true
		for _, s := range r.faults[isp.Name] {
			if s.overlaps(a, b) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (r *chaosRun) daemonDown(a, b time.Time) bool {
	for _, s := range r.down {
		if s.overlaps(a, b) {
			return true
		}
	}
	return false
}

// report evaluates the invariants and prints the table.
func (r *chaosRun) report(t *testing.T, length time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type row struct {
		name       string
		checks     int
		violations []string
	}
	var rows []row

	// Held flows.
	held := row{name: "no held flow lost on a link that stayed healthy"}
	held.checks = r.flowsOK + len(r.flowDeaths)
	for _, fd := range r.flowDeaths {
		explained := r.daemonDown(fd.opened, fd.died)
		for _, s := range r.faults[fd.link] {
			if s.overlaps(fd.opened, fd.died.Add(time.Second)) {
				explained = true
			}
		}
		if !explained {
			held.violations = append(held.violations, fmt.Sprintf("flow on %s opened %s died %s: %s", fd.link, fd.opened.Format("15:04:05.000"), fd.died.Format("15:04:05.000"), fd.err))
		}
	}
	rows = append(rows, held)

	// New connections.
	nc := row{name: fmt.Sprintf("new connections fail < %v while a link is healthy", connBound)}
	var streak time.Time
	longest := time.Duration(0)
	for _, c := range r.conns {
		nc.checks++
		if !c.ok {
			if streak.IsZero() {
				streak = c.at.Add(-time.Second) // the request began a second before
			}
			continue
		}
		if !streak.IsZero() {
			d := c.at.Sub(streak)
			if r.anyHealthy(streak, c.at) && !r.daemonDown(streak, c.at) {
				longest = max(longest, d)
				if d > connBound {
					nc.violations = append(nc.violations, fmt.Sprintf("failing for %v from %s", d.Round(time.Millisecond), streak.Format("15:04:05.000")))
				}
			}
			streak = time.Time{}
		}
	}
	rows = append(rows, nc)

	// Constant loss.
	lr := row{name: "no state change under constant 30 % loss after degraded"}
	for isp, ws := range r.loss {
		for _, w := range ws {
			to := w.to
			if to.IsZero() {
				to = time.Now()
			}
			if to.Sub(w.from) < lossWindow-time.Second {
				continue
			}
			lr.checks++
			degraded := false
			var changes []string
			for _, e := range r.events {
				if e.Link != isp || e.Kind != monitor.StateChanged || e.Time.Before(w.from) || e.Time.After(to) {
					continue
				}
				if degraded {
					changes = append(changes, fmt.Sprintf("%s→%s at %s (%s)", e.From, e.To, e.Time.Format("15:04:05.000"), e.Reason))
				}
				if e.To == monitor.Degraded {
					degraded = true
				}
			}
			if len(changes) > 0 {
				lr.violations = append(lr.violations, fmt.Sprintf("%s %s: %s", isp, w.from.Format("15:04:05"), strings.Join(changes, "; ")))
			}
		}
	}
	rows = append(rows, lr)

	rows = append(rows, row{name: "kernel state after each restart equal to before", checks: r.restarts, violations: r.stateDiff})
	rows = append(rows, row{name: "reloads (valid applied, invalid refused, daemon alive)", checks: r.reloadsOK + r.reloadsBad + len(r.reloadErrs), violations: r.reloadErrs})

	// Resources: per process, after its first 30 s.
	res := row{name: "goroutines, fds, RSS bounded"}
	var g, f, m [2]int
	g[0], f[0], m[0] = 1<<30, 1<<30, 1<<30
	first := map[int]sample{}
	for _, s := range r.samples {
		res.checks++
		g[0], g[1] = min(g[0], s.goroutines), max(g[1], s.goroutines)
		f[0], f[1] = min(f[0], s.fds), max(f[1], s.fds)
		m[0], m[1] = min(m[0], s.rss), max(m[1], s.rss)
		if _, ok := first[s.pid]; !ok {
			first[s.pid] = s
		}
		if s.goroutines > 1000 || s.fds > 256 || s.rss > 200<<10 {
			res.violations = append(res.violations, fmt.Sprintf("pid %d at %s: %d goroutines, %d fds, %d kB", s.pid, s.at.Format("15:04:05"), s.goroutines, s.fds, s.rss))
		}
		if f0 := first[s.pid]; s.at.Sub(f0.at) > 30*time.Second && (s.goroutines > 2*f0.goroutines+50 || s.fds > 2*f0.fds+20) {
			res.violations = append(res.violations, fmt.Sprintf("pid %d grew from %d goroutines/%d fds to %d/%d", s.pid, f0.goroutines, f0.fds, s.goroutines, s.fds))
		}
	}
	rows = append(rows, res)

	var b strings.Builder
	fmt.Fprintf(&b, "chaos soak: %v, 3 ISPs; faults %v; %d restarts (SIGKILL); reloads %d valid, %d invalid; %d short connections, %d held-flow lifetimes (%d on an unknown link)\n",
		length.Round(time.Second), r.faultCount, r.restarts, r.reloadsOK, r.reloadsBad, len(r.conns), held.checks+r.unknownLnk, r.unknownLnk)
	fmt.Fprintf(&b, "longest failure streak of new connections with a healthy link: %v; goroutines %d-%d, fds %d-%d, RSS %d-%d MB\n\n",
		longest.Round(time.Millisecond), g[0], g[1], f[0], f[1], m[0]>>10, m[1]>>10)
	fmt.Fprintf(&b, "| invariant | checks | violations |\n|---|---|---|\n")
	for _, rw := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", rw.name, rw.checks, len(rw.violations))
	}
	t.Logf("\n%s", b.String())
	if p := os.Getenv("MULTIHOME_CHAOS_REPORT"); p != "" {
		os.WriteFile(p, []byte(b.String()), 0o644)
	}
	for _, rw := range rows {
		for i, v := range rw.violations {
			if i == 10 {
				t.Errorf("%s: ... %d more", rw.name, len(rw.violations)-10)
				break
			}
			t.Errorf("%s: %s", rw.name, v)
		}
	}
}

// scrapeSock returns the /metrics page of the API at sock (no test
// failure: it runs beside the test, and the daemon may be restarting).
func scrapeSock(sock string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://localhost/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
