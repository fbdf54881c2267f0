// Package e2e runs the multihome binary the way an operator does: built
// from source, started inside the gateway namespace of a lab, driven with
// signals and faults, observed through its event stream and exit status.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"

	mdns "github.com/miekg/dns"
)

// binary is cmd/multihome, labBinary cmd/multihome-lab (the demo), both
// built into one directory as make does.
var binary, labBinary string

func TestMain(m *testing.M) {
	lab.CleanupStale("mhlt")
	dir, err := os.MkdirTemp("", "multihome-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "multihome")
	labBinary = filepath.Join(dir, "multihome-lab")
	for bin, pkg := range map[string]string{binary: "../cmd/multihome", labBinary: "../cmd/multihome-lab"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a multihome process running in a lab's gateway namespace.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan monitor.Event
	mu     sync.Mutex
	log    strings.Builder
	api    string // the daemon's API address
	// state is each link's state as of the events consumed so far.
	state map[string]monitor.State
}

// scrape returns the daemon's /metrics page, read through its API socket.
func (d *daemon) scrape() string {
	d.t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(d.api, "unix:"))
	}}}
	resp, err := c.Get("http://localhost/metrics")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		d.t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	return string(b)
}

// metricValue returns the value of the sample named exactly series
// (name{labels}), or -1 if absent.
func metricValue(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// cli runs a multihome client command against the daemon's API.
func (d *daemon) cli(args ...string) (string, error) {
	out, err := exec.Command(binary, append(args, "--api", d.api)...).CombinedOutput()
	return string(out), err
}

func startDaemon(t *testing.T, l *lab.Lab, cfg []byte) (*daemon, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "multihome.yaml")
	cfg = fmt.Appendf(append([]byte{}, cfg...), "\napi: {listen: \"unix:%s/api.sock\"}\n", dir)
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, events: make(chan monitor.Event, 1024), state: map[string]monitor.State{}, api: "unix:" + dir + "/api.sock"}
	d.cmd = l.Run(context.Background(), "gw", binary, "run", "--config", path, "--events", "-")
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.log.Write(b)
	})
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e monitor.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("bad event line %q: %v", sc.Text(), err)
				continue
			}
			d.events <- e
		}
		close(d.events)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
			t.Error("daemon did not stop within 10 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logText())
		}
	})
	return d, path
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// wait returns the first event matching, or fails the test after timeout.
func (d *daemon) wait(timeout time.Duration, what string, match func(monitor.Event) bool) monitor.Event {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				d.t.Fatalf("daemon exited while waiting for %s", what)
			}
			if e.Kind == monitor.StateChanged {
				d.state[e.Link] = e.To
			}
			if match(e) {
				return e
			}
		case <-deadline:
			d.t.Fatalf("no %s within %s", what, timeout)
		}
	}
}

// waitState waits until link is in state s; it returns the event that put
// it there, or the zero Event if it already was.
func (d *daemon) waitState(timeout time.Duration, link string, s monitor.State) monitor.Event {
	d.t.Helper()
	if d.state[link] == s {
		return monitor.Event{}
	}
	return d.wait(timeout, link+" "+s.String(), func(e monitor.Event) bool {
		return e.Link == link && e.Kind == monitor.StateChanged && e.To == s
	})
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
}

// TestDaemonBlackholeAndRecovery runs the shipped lab config: isp1 is
// blackholed beyond its first hop, must be declared down fast, then come
// back after recovery and hold-down; isp2 must stay up throughout.
func TestDaemonBlackholeAndRecovery(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, _ := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := d.wait(5*time.Second, "isp1 down", func(e monitor.Event) bool {
		if e.Link == "isp2" && e.Kind == monitor.StateChanged && e.To == monitor.Down {
			t.Errorf("isp2 went down though only isp1 was broken: %s", e.Reason)
		}
		return e.Link == "isp1" && e.Kind == monitor.StateChanged && e.To == monitor.Down
	})
	took := down.Time.Sub(at)
	t.Logf("blackhole detected in %s: %s", took, down.Reason)
	// 3 failed probes, one every ~67 ms, plus a timeout: ~0.3 s; the bound
	// is generous for a loaded CI machine.
	if took > 1500*time.Millisecond {
		t.Errorf("blackhole took %s to detect, want < 1.5s", took)
	}
	if down.Status.TargetsUp != 0 {
		t.Errorf("down with %d targets up", down.Status.TargetsUp)
	}

	restored := time.Now()
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	d.wait(5*time.Second, "isp1 hold-down", func(e monitor.Event) bool {
		return e.Link == "isp1" && e.Kind == monitor.HoldDownStarted
	})
	up := d.waitState(10*time.Second, "isp1", monitor.Up)
	// up_after 5 probes (~0.33 s) then hold_down 2 s.
	if back := up.Time.Sub(restored); back < 2*time.Second {
		t.Errorf("isp1 back up %s after repair: sooner than its 2s hold-down", back)
	}
}

// TestReloadRejectsBadConfig: a bad config sent with SIGHUP is refused with
// its error, and the daemon keeps working on the old one.
func TestReloadRejectsBadConfig(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, path := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp2", monitor.Up)

	bad := strings.Replace(string(examples.Lab()), "interval: 200ms", "interval: fast", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.logText(), "reload rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'reload rejected' in the log:\n%s", d.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(d.logText(), `defaults.health.interval: bad duration \"fast\"`) {
		t.Errorf("rejection does not name the field and value:\n%s", d.logText())
	}
	// Still monitoring with the old config.
	if _, err := l.Fault("isp2", lab.Fault{Kind: lab.CarrierDown}); err != nil {
		t.Fatal(err)
	}
	e := d.waitState(3*time.Second, "isp2", monitor.Down)
	if !strings.Contains(e.Reason, "carrier") {
		t.Errorf("isp2 down for %q, want carrier loss", e.Reason)
	}
}

// TestCheckConfig runs the CLI on good and bad files.
func TestCheckConfig(t *testing.T) {
	out, err := exec.Command(binary, "check-config", "../examples/lab.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok, 2 link(s)") {
		t.Errorf("check-config lab.yaml: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("links:\n  - name: a\n    interface: wan1\n    gateway4: 2001:db8::1\n    wieght: 2\n"), 0o644)
	out, err = exec.Command(binary, "check-config", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("check-config accepted a bad file:\n%s", out)
	}
	for _, want := range []string{
		bad + `:4:15: links[0].gateway4: 2001:db8::1 is not an IPv4 address`,
		bad + `:5:5: links[0].wieght: unknown field "wieght" (did you mean "weight"?)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
}

// TestDemoQuick runs the README's demo in its short, self-checking form.
func TestDemoQuick(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, labBinary, "demo", "--quick").CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo --quick failed: %v", err)
	}
	wants := []string{"multihome: isp1 is down after", "isp1 is back up after", "tearing the lab down",
		"isp1's address 2001:db8:1:100::80 deprecated on the host", "new connections now leave from isp2's address",
		"lanhost.example.com AAAA → 2001:db8:2:100::80 (TTL"}
	if lab.FRRAvailable() == nil { // make test installs FRR: CI always shows BGP
		wants = append(wants, "withdrawn from isp1's router", "announced again to isp1's router")
	}
	for _, want := range wants {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestOperatorCommands drives the real daemon through its API with the CLI:
// status, forcing a link down and up, and the decision log.
func TestOperatorCommands(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, _ := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)

	out, err := d.cli("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"isp1", "isp2", "up"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if out, err := d.cli("link", "down", "isp2", "--reason", "maintenance window"); err != nil {
		t.Fatalf("link down: %v\n%s", err, out)
	}
	e := d.waitState(3*time.Second, "isp2", monitor.Down)
	if e.Status.Admin != monitor.AdminDown || !strings.Contains(e.Reason, "maintenance window") {
		t.Errorf("forced down event = admin %s, reason %q", e.Status.Admin, e.Reason)
	}
	if out, err := d.cli("link", "up", "isp2"); err != nil {
		t.Fatalf("link up: %v\n%s", err, out)
	}
	d.waitState(5*time.Second, "isp2", monitor.Up)
	out, err = d.cli("events")
	if err != nil || !strings.Contains(out, "maintenance window") {
		t.Errorf("events lacks the forced-down decision: %v\n%s", err, out)
	}
	if out, err := d.cli("link", "down", "nosuchlink"); err == nil {
		t.Errorf("link down of an unknown link succeeded:\n%s", out)
	}
}

// sourceOf fetches /ip from the LAN host through the gateway and returns the
// source address the server saw: which ISP the connection left by.
func sourceOf(t *testing.T, l *lab.Lab, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ip, err := l.Get(ctx, "lan1", "", "/ip")
	return strings.TrimSpace(ip), err
}

// TestDaemonSteersLANTraffic is the outbound datapath end to end with the
// real monitor: LAN connections are spread by weight (isp1:isp2 = 2:1 in
// examples/lab.yaml), a blackholed isp1 stops getting new connections
// within a second, and gets them again after recovery and hold-down.
func TestDaemonSteersLANTraffic(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, _ := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)
	isp1, isp2 := l.ISPs[0].GW.String(), l.ISPs[1].GW.String()

	// Wait until the datapath is in place (the first connections may use
	// the main table while it is applied).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if src, err := sourceOf(t, l, time.Second); err == nil && (src == isp1 || src == isp2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("LAN host cannot reach the server through the gateway")
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 300
	seen := map[string]int{}
	for range n {
		src, err := sourceOf(t, l, 2*time.Second)
		if err != nil {
			t.Fatalf("connection from the LAN failed with both links up: %v", err)
		}
		seen[src]++
	}
	share := float64(seen[isp1]) / n
	t.Logf("weighted 2:1 over %d connections: isp1 %d, isp2 %d (isp1 share %.3f)", n, seen[isp1], seen[isp2], share)
	if share < 0.56 || share > 0.78 || seen[isp1]+seen[isp2] != n {
		t.Errorf("isp1 share %.3f of %v, want ~0.667", share, seen)
	}

	// The metrics count the connections pinned to each link (a
	// background count, every second or so on a small table).
	for _, link := range []string{"isp1", "isp2"} {
		var v float64
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(200 * time.Millisecond) {
			if v = metricValue(d.scrape(), `multihome_outbound_flows{link="`+link+`"}`); v >= 1 {
				break
			}
		}
		if v < 1 {
			t.Errorf("multihome_outbound_flows for %s = %v after %d connections", link, v, n)
		}
	}

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	// Keep opening connections; from 1 s after the fault every one must
	// succeed via isp2.
	var firstGood time.Duration
	for time.Since(at) < 2500*time.Millisecond {
		src, err := sourceOf(t, l, 300*time.Millisecond)
		if err == nil && src == isp2 && firstGood == 0 {
			firstGood = time.Since(at)
		}
		if time.Since(at) > time.Second && (err != nil || src != isp2) {
			t.Fatalf("%s after blackholing isp1: connection via %q, err %v", time.Since(at).Round(time.Millisecond), src, err)
		}
	}
	t.Logf("first new connection via isp2 %s after the blackhole", firstGood.Round(time.Millisecond))
	d.waitState(time.Second, "isp1", monitor.Down) // long since happened

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	up := d.waitState(10*time.Second, "isp1", monitor.Up)
	time.Sleep(300 * time.Millisecond) // the datapath follows the event
	seen = map[string]int{}
	for range 60 {
		src, err := sourceOf(t, l, 2*time.Second)
		if err != nil {
			t.Fatalf("after failback: %v", err)
		}
		seen[src]++
	}
	if seen[isp1] == 0 {
		t.Errorf("isp1 back up at %s but takes no new connections: %v", up.Time.Format("15:04:05.000"), seen)
	}
}

// queryA asks the site's DNS server at server (via the ISP it belongs to)
// for name's A records, from the Internet core.
func queryA(t *testing.T, l *lab.Lab, server, name string) ([]string, uint32, error) {
	t.Helper()
	return l.Query("core", server, name, mdns.TypeA, 500*time.Millisecond)
}

// TestDaemonDNSFollowsLinks: the daemon's DNS server, asked from the
// Internet core through each ISP, answers www.example.com with the address
// of every healthy link; a blackholed isp1 drops out of the answers as soon
// as the monitor says so, and returns after recovery and hold-down.
func TestDaemonDNSFollowsLinks(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, _ := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)
	via1, via2 := l.ISPs[0].GW.String(), l.ISPs[1].GW.String()
	both := []string{via1, via2}
	sort.Strings(both)

	deadline := time.Now().Add(5 * time.Second)
	for {
		got1, _, err1 := queryA(t, l, via1, "www.example.com")
		got2, _, err2 := queryA(t, l, via2, "WWW.Example.COM")
		if err1 == nil && err2 == nil && slices.Equal(got1, both) && slices.Equal(got2, both) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with both links up: via isp1 %v %v, via isp2 %v %v; want %v", got1, err1, got2, err2, both)
		}
		time.Sleep(100 * time.Millisecond)
	}

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := d.waitState(3*time.Second, "isp1", monitor.Down)
	var got []string
	var ttl uint32
	for {
		got, ttl, err = queryA(t, l, via2, "www.example.com")
		if err == nil && slices.Equal(got, []string{via2}) {
			break
		}
		if time.Since(down.Time) > time.Second {
			t.Fatalf("1 s after isp1 went down, DNS via isp2 still answers %v (%v)", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("isp1's address left the answers %s after the blackhole, TTL now %d s", time.Since(at).Round(time.Millisecond), ttl)
	if ttl >= 30 {
		t.Errorf("TTL %d right after a change, want it lowered below the configured 30 s", ttl)
	}
	if _, _, err := queryA(t, l, via1, "www.example.com"); err == nil {
		t.Errorf("query via the blackholed isp1 was answered")
	}

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	d.waitState(10*time.Second, "isp1", monitor.Up)
	deadline = time.Now().Add(2 * time.Second)
	for {
		got, _, err = queryA(t, l, via1, "www.example.com")
		if err == nil && slices.Equal(got, both) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after recovery: %v %v, want %v", got, err, both)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadGoodAndPartial: a good reload through the API takes effect; a
// reload that parses but that one subsystem cannot apply (a DNS listen
// address the gateway does not have) is refused as a whole and the old
// config keeps running everywhere.
func TestReloadGoodAndPartial(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, path := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)
	via2 := l.ISPs[1].GW.String()
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	addName := func(cfg []byte, name string) []byte {
		return []byte(strings.Replace(string(cfg), "      names:\n", "      names:\n        - name: "+name+"\n          records: [{link: isp2, a: self}]\n", 1))
	}

	good := addName(cfg, "api")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := d.cli("reload"); err != nil {
		t.Fatalf("good reload refused: %v\n%s", err, out)
	}
	if got, _, err := queryA(t, l, via2, "api.example.com"); err != nil || !slices.Equal(got, []string{via2}) {
		t.Errorf("after a good reload api.example.com = %v, %v; want [%s]", got, err, via2)
	}

	partial := addName(good, "partial")
	partial = []byte(strings.Replace(string(partial), `listen: ["198.51.100.2:53", "198.51.100.18:53"]`, `listen: ["198.51.100.2:53", "198.51.100.99:53"]`, 1))
	if string(partial) == string(addName(good, "partial")) {
		t.Fatal("test config did not change the listen line")
	}
	if err := os.WriteFile(path, partial, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := d.cli("reload")
	if err == nil {
		t.Fatalf("reload with an unbindable DNS address accepted:\n%s", out)
	}
	t.Logf("partial reload refused: %s", strings.TrimSpace(out))
	if _, _, err := queryA(t, l, via2, "partial.example.com"); err == nil {
		t.Errorf("partial.example.com is served although the reload was refused")
	}
	if got, _, err := queryA(t, l, via2, "api.example.com"); err != nil || !slices.Equal(got, []string{via2}) {
		t.Errorf("after a refused reload api.example.com = %v, %v: the previous config should still serve", got, err)
	}
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.CarrierDown}); err != nil {
		t.Fatal(err)
	}
	d.waitState(3*time.Second, "isp1", monitor.Down)
}

// TestShutdownLeavesNothing: after SIGTERM the gateway namespace has no
// nftables table, ip rule or routing table of multihome's left.
func TestShutdownLeavesNothing(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	ctx := context.Background()
	show := func() (string, string, string) {
		tables, _ := l.Run(ctx, "gw", "nft", "list", "tables").CombinedOutput()
		rules, _ := l.Run(ctx, "gw", "ip", "rule", "show").CombinedOutput()
		routes, _ := l.Run(ctx, "gw", "ip", "route", "show", "table", "all").CombinedOutput()
		return string(tables), string(rules), string(routes)
	}
	t0, r0, rt0 := show()
	d, _ := startDaemon(t, l, examples.Lab())
	d.waitState(10*time.Second, "isp1", monitor.Up)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tables, rules, _ := show()
		if strings.Contains(tables, "multihome") && strings.Contains(rules, "fwmark") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("datapath never installed: tables %q rules %q", tables, rules)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("daemon exited with %v after SIGTERM", err)
	}
	t1, r1, rt1 := show()
	if t1 != t0 || r1 != r0 || rt1 != rt0 {
		t.Errorf("kernel state differs after shutdown:\nnft before %q after %q\nrules before:\n%s\nafter:\n%s\nroutes before:\n%s\nafter:\n%s", t0, t1, r0, r1, rt0, rt1)
	}
}
