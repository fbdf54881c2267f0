package daemon

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

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// bfdFRR is FRR's zebra and bfdd in an ISP namespace, with static BFD
// peers (no BGP).
type bfdFRR struct{ *lab.FRR }

// startBFDFRR runs zebra and bfdd in role's namespace of l and gives
// bfdd the configuration conf; lab.Down stops them when the test ends.
func startBFDFRR(t *testing.T, l *lab.Lab, role, conf string) *bfdFRR {
	t.Helper()
	f, err := l.StartFRR(context.Background(), role, "", "bfdd")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Configure(context.Background(), "bfdd", conf); err != nil {
		t.Fatal(err)
	}
	return &bfdFRR{f}
}

// frrPeer is one entry of FRR's `show bfd peers json`.
type frrPeer struct {
	Peer       string `json:"peer"`
	Status     string `json:"status"`
	Diagnostic string `json:"diagnostic"`
	RemoteDiag string `json:"remote-diagnostic"`
	RxInterval int    `json:"receive-interval"`
	TxInterval int    `json:"transmit-interval"`
	Mult       int    `json:"detect-multiplier"`
	RemoteRx   int    `json:"remote-receive-interval"`
	RemoteTx   int    `json:"remote-transmit-interval"`
	RemoteMult int    `json:"remote-detect-multiplier"`
}

func (f *bfdFRR) peer(addr string) frrPeer {
	out, err := f.Vtysh(context.Background(), "bfdd", "show bfd peers json")
	if err != nil {
		return frrPeer{}
	}
	var ps []frrPeer
	json.Unmarshal(out, &ps)
	for _, p := range ps {
		if p.Peer == addr {
			return p
		}
	}
	return frrPeer{}
}

// builtBinary is the last binary multihomeBinary built (it lives as long
// as the test that built it).
var builtBinary string

// multihomeBinary builds cmd/multihome into the test's temporary
// directory, or returns the one built earlier in this test.
func multihomeBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(builtBinary); builtBinary != "" && err == nil {
		return builtBinary
	}
	bin := filepath.Join(t.TempDir(), "multihome")
	builtBinary = bin
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/multihome").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// labDaemon is the multihome binary running in the lab's gateway.
type labDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	path   string // the config file
	events chan monitor.Event
	api    string
	mu     sync.Mutex
	log    strings.Builder
}

func startLabDaemon(t *testing.T, l *lab.Lab, yaml string) *labDaemon {
	t.Helper()
	bin := multihomeBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "multihome.yaml")
	yaml += fmt.Sprintf("api: {listen: \"unix:%s/api.sock\"}\n", dir)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &labDaemon{t: t, path: path, events: make(chan monitor.Event, 1024), api: dir + "/api.sock"}
	cmd := l.Run(context.Background(), "gw", bin, "run", "--config", path, "--events", "-")
	cmd.Stderr = writerTo(func(b []byte) { d.mu.Lock(); d.log.Write(b); d.mu.Unlock() })
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.cmd = cmd
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var e monitor.Event
			if err := dec.Decode(&e); err != nil {
				close(d.events)
				return
			}
			d.events <- e
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("multihome did not stop on SIGTERM")
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("multihome log:\n%s", d.logText())
		}
	})
	return d
}

// reload rewrites the config file with yaml (plus the API line) and
// sends SIGHUP; it waits for the daemon to log the result.
func (d *labDaemon) reload(yaml string) {
	d.t.Helper()
	b, err := os.ReadFile(d.path)
	if err != nil {
		d.t.Fatal(err)
	}
	api := string(b[strings.LastIndex(string(b), "api: "):])
	if err := os.WriteFile(d.path, []byte(yaml+api), 0o644); err != nil {
		d.t.Fatal(err)
	}
	n := strings.Count(d.logText(), "config reloaded")
	d.cmd.Process.Signal(syscall.SIGHUP)
	if _, ok := pollFor(10*time.Second, func() bool { return strings.Count(d.logText(), "config reloaded") > n }); !ok {
		d.t.Fatalf("reload not applied:\n%s", d.logText())
	}
}

func (d *labDaemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// wait returns the first event matching within timeout.
func (d *labDaemon) wait(timeout time.Duration, what string, match func(monitor.Event) bool) monitor.Event {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				d.t.Fatalf("multihome exited while waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-deadline:
			d.t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// metrics returns the daemon's /metrics page.
func (d *labDaemon) metrics() string { return d.get("/metrics") }

// get returns the body of an API path ("" on error).
func (d *labDaemon) get(path string) string {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.api)
	}}}
	resp, err := c.Get("http://localhost" + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

type writerTo func([]byte)

func (w writerTo) Write(b []byte) (int, error) { w(b); return len(b), nil }

func linkTo(link string, s monitor.State) func(monitor.Event) bool {
	return func(e monitor.Event) bool { return e.Link == link && e.Kind == monitor.StateChanged && e.To == s }
}

func pollFor(d time.Duration, f func() bool) (time.Time, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if f() {
			return time.Now(), true
		}
	}
	return time.Time{}, false
}

// cutFirstHop drops everything ISP role's router receives on, sends
// through or forwards over its gw0 (the gateway link), without touching
// carriers: BFD packets are lost both ways. It returns the undo function.
func cutFirstHop(t *testing.T, l *lab.Lab, role string) func() {
	t.Helper()
	cmd := l.Run(context.Background(), role, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet mhbfdfirsthop {
  chain in { type filter hook input priority -10; iifname "gw0" drop; }
  chain fwd4 { type filter hook forward priority -10; iifname "gw0" drop; oifname "gw0" drop; }
  chain out { type filter hook output priority -10; oifname "gw0" drop; }
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return func() { l.Run(context.Background(), role, "nft", "delete", "table", "inet", "mhbfdfirsthop").Run() }
}

// TestLabLinkBFD runs the multihome binary in a lab's gateway with
// link-level BFD (no BGP) at 100 ms × 3 toward FRR's bfdd in both ISPs:
// ISP 1 over IPv4 (peer: the link's gateway4), ISP 2 over IPv6 (peer:
// gateway6), which gets its bfd block by a reload (SIGHUP). Probes are
// slow on purpose (1 s, 3 rounds to go down), so a fast verdict can only
// be BFD's. ISP 1's session has hold_up 1s, ISP 2's the default 5 s:
// each cut waits until the session has been up for its hold-up (a down
// sooner is left to the probes, docs/bfd.md). A dead first hop then takes the link down
// within about the 300 ms detection time and FRR sees the session down;
// restored, the session comes back and the link returns after its probes
// and the hold-down.
func TestLabLinkBFD(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startBFDFRR(t, l, "isp1", `bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
 peer 198.51.100.2 local-address 198.51.100.1 interface gw0
  profile fast
 !
!
`)
	isp2 := startBFDFRR(t, l, "isp2", `bfd
 peer 2001:db8:2::2 local-address 2001:db8:2::1 interface gw0
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
!
`)
	health := "{interval: 1s, down_after: 3, up_after: 2, hold_down: 1s}"
	yaml := fmt.Sprintf(`links:
  - name: isp1
    interface: wan1
    gateway4: 198.51.100.1
    probes: [{target: %s}]
    health: %s
    bfd: {min_tx: 100ms, min_rx: 100ms, multiplier: 3, hold_up: 1s}
  - name: isp2
    interface: wan2
    gateway6: "2001:db8:2::1"
    probes: [{target: "%s"}]
    health: %s
    bfd: {min_tx: 100ms, min_rx: 100ms}
`, lab.ProbeTarget1, health, lab.ProbeTarget61, health)
	// isp2 starts without bfd and gains it by a reload (SIGHUP) later.
	noBFD2 := strings.Replace(yaml, "    bfd: {min_tx: 100ms, min_rx: 100ms}\n", "", 1)
	if noBFD2 == yaml {
		t.Fatal("test config: isp2's bfd line not found")
	}
	d := startLabDaemon(t, l, noBFD2)
	seen := map[string]bool{}
	d.wait(15*time.Second, "isp1 and isp2 up", func(e monitor.Event) bool {
		if e.Kind == monitor.StateChanged && e.To == monitor.Up {
			seen[e.Link] = true
		}
		return seen["isp1"] && seen["isp2"]
	})
	if _, ok := pollFor(3*time.Second, func() bool { return isp2.peer("2001:db8:2::2").Status == "up" }); ok {
		t.Fatal("isp2's session is up without bfd configured")
	}
	d.reload(yaml)
	for _, c := range []struct {
		f    *bfdFRR
		peer string
	}{{isp1, "198.51.100.2"}, {isp2, "2001:db8:2::2"}} {
		if _, ok := pollFor(10*time.Second, func() bool { return c.f.peer(c.peer).Status == "up" }); !ok {
			out, err := c.f.Vtysh(context.Background(), "bfdd", "show running-config")
			t.Fatalf("FRR's BFD session to %s is %+v; vtysh: %v %s", c.peer, c.f.peer(c.peer), err, out)
		}
	}
	p := isp1.peer("198.51.100.2")
	t.Logf("FRR isp1: %+v", p)
	if p.RemoteRx != 100 || p.RemoteTx != 100 || p.RemoteMult != 3 {
		t.Errorf("FRR sees our timers as rx %d tx %d × %d, want 100/100 × 3", p.RemoteRx, p.RemoteTx, p.RemoteMult)
	}
	if _, ok := pollFor(10*time.Second, func() bool {
		m := d.metrics()
		return strings.Contains(m, `multihome_bfd_session_state{link="isp1",peer="198.51.100.1",state="up"} 1`) &&
			strings.Contains(m, `multihome_bfd_session_state{link="isp2",peer="2001:db8:2::1",state="up"} 1`)
	}); !ok {
		t.Fatalf("metrics do not show both sessions up:\n%s", grepLines(d.metrics(), "multihome_bfd_"))
	}
	trials := 1
	if n, err := strconv.Atoi(os.Getenv("MULTIHOME_BFD_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	downs := map[string][]time.Duration{}
	for _, c := range []struct {
		link, role, peer, ours string
		holdUp                 time.Duration
		f                      *bfdFRR
	}{
		{"isp1", "isp1", "198.51.100.2", "198.51.100.1", time.Second, isp1},
		{"isp2", "isp2", "2001:db8:2::2", "2001:db8:2::1", config.DefaultBFDHoldUp, isp2},
	} {
		for range trials {
			// Only a session up for its hold-up downs the link at once
			// (docs/bfd.md, "Hold-up"): cut an established one.
			d.waitEstablished(c.link, c.ours, c.holdUp)
			at := time.Now()
			undo := cutFirstHop(t, l, c.role)
			down := d.wait(5*time.Second, c.link+" down", linkTo(c.link, monitor.Down))
			took := down.Time.Sub(at)
			downs[c.link] = append(downs[c.link], took)
			t.Logf("%s: first hop cut → link down after %v (%s)", c.link, took.Round(time.Millisecond), down.Reason)
			if !strings.Contains(down.Reason, "BFD") {
				t.Errorf("%s went down for %q, want BFD's verdict; the daemon's BFD log:\n%s", c.link, down.Reason,
					grepLines(d.logText(), "link="+c.link+" peer="))
			}
			if took > 1500*time.Millisecond {
				t.Errorf("%s: down after %v, want about the 300 ms detection time (bound 1.5 s)", c.link, took)
			}
			if fd, ok := pollFor(3*time.Second, func() bool { return c.f.peer(c.peer).Status == "down" }); !ok {
				t.Errorf("FRR still sees %s as %+v", c.peer, c.f.peer(c.peer))
			} else {
				t.Logf("%s: FRR saw the session down after %v (polled)", c.link, fd.Sub(at).Round(time.Millisecond))
			}
			undo()
			restored := time.Now()
			if _, ok := pollFor(10*time.Second, func() bool { return c.f.peer(c.peer).Status == "up" }); !ok {
				t.Errorf("FRR's session to %s not back: %+v", c.peer, c.f.peer(c.peer))
			}
			up := d.wait(15*time.Second, c.link+" up again", linkTo(c.link, monitor.Up))
			t.Logf("%s: restored → link up after %v (probes + hold-down)", c.link, up.Time.Sub(restored).Round(time.Millisecond))
		}
		ds := slices.Clone(downs[c.link])
		slices.Sort(ds)
		t.Logf("%s: %d trials, first hop cut → link down: median %v, min %v, max %v", c.link, len(ds),
			((ds[(len(ds)-1)/2] + ds[len(ds)/2]) / 2).Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	}
	m := d.metrics()
	for _, want := range []string{
		fmt.Sprintf(`multihome_bfd_session_transitions_total{link="isp1",peer="198.51.100.1",to="down"} %d`, trials),
		fmt.Sprintf(`multihome_bfd_session_transitions_total{link="isp2",peer="2001:db8:2::1",to="down"} %d`, trials),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "multihome_bfd_"))
		}
	}
}

// waitEstablished waits until link's BFD session (to peer) has been up,
// without a flap, for longer than holdUp, as the daemon's metrics show.
func (d *labDaemon) waitEstablished(link, peer string, holdUp time.Duration) {
	d.t.Helper()
	up := fmt.Sprintf(`multihome_bfd_session_state{link=%q,peer=%q,state="up"} 1`, link, peer)
	ups := fmt.Sprintf(`multihome_bfd_session_transitions_total{link=%q,peer=%q,to="up"} `, link, peer)
	upsOf := func(m string) string { return grepLines(m, ups) }
	for deadline := time.Now().Add(holdUp + 30*time.Second); time.Now().Before(deadline); {
		m := d.metrics()
		if !strings.Contains(m, up) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n := upsOf(m)
		time.Sleep(holdUp + 500*time.Millisecond)
		if m := d.metrics(); strings.Contains(m, up) && upsOf(m) == n {
			return
		}
	}
	d.t.Fatalf("%s's BFD session not up for %v without a flap within %v:\n%s", link, holdUp, holdUp+30*time.Second,
		grepLines(d.metrics(), "multihome_bfd_"))
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
