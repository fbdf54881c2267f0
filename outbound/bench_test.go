package outbound

// Benchmarks of the outbound datapath, gated behind MULTIHOME_BENCH=1
// (bench/outbound.sh runs them). Each is bounded in time and traffic and
// runs only inside lab namespaces.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	mhnetns "github.com/multihome/multihome/netns"
)

func benchGate(t *testing.T) {
	if os.Getenv("MULTIHOME_BENCH") == "" {
		t.Skip("benchmark: set MULTIHOME_BENCH=1 (bench/outbound.sh)")
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

type sample struct {
	start, end time.Time
	ok         bool
	src        string
}

// stream opens one new connection every 10 ms from lan1 (each with a 1 s
// timeout) until stop is closed, and returns every attempt.
func stream(e *env, stop <-chan struct{}) []sample {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []sample
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			wg.Wait()
			return out
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := sample{start: time.Now()}
				src, err := e.viaTimeout("lan1", time.Second)
				s.end, s.ok, s.src = time.Now(), err == nil, src
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
			}()
		}
	}
}

// fakeBlackhole streams connections from the LAN host (stream),
// blackholes isp1 and has the fake monitor report it down at once (t0:
// the fault is in place, the monitor "detects" it now), calls during(t0)
// unless nil, and after 1.5 s returns failoverFigures for isp2. isp1
// stays blackholed and down.
func fakeBlackhole(t *testing.T, e *env, during func(t0 time.Time)) (first, gap time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	res := make(chan []sample, 1)
	go func() { res <- stream(e, stop) }()
	time.Sleep(300 * time.Millisecond)
	if _, err := e.l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	e.src.down("isp1")
	if during != nil {
		during(t0)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	return failoverFigures(<-res, t0, e.addr("isp2"))
}

// failoverFigures returns the time from t0 to the first successful
// connection through the backup (source backup) started at or after t0,
// and the longest gap between two successful completions around t0.
func failoverFigures(samples []sample, t0 time.Time, backup string) (first, gap time.Duration) {
	first = -1
	var ends []time.Time
	for _, s := range samples {
		if !s.ok {
			continue
		}
		ends = append(ends, s.end)
		if s.src == backup && !s.start.Before(t0) && (first < 0 || s.end.Sub(t0) < first) {
			first = s.end.Sub(t0)
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ends); i++ {
		if ends[i].After(t0.Add(-50*time.Millisecond)) && ends[i-1].Before(t0.Add(3*time.Second)) {
			gap = max(gap, ends[i].Sub(ends[i-1]))
		}
	}
	return first, gap
}

// TestBenchFailoverFake: blackhole of the active link with detection
// excluded (the fake monitor reports the link down at the moment of the
// fault): what the datapath itself costs.
func TestBenchFailoverFake(t *testing.T) {
	benchGate(t)
	e := newEnv(t, lab.Spec{ISPs: 2}, "outbound:\n  policies:\n    - {name: main, type: failover}\n")
	trials := benchTrials()
	var firsts, gaps []time.Duration
	for i := range trials {
		first, gap := fakeBlackhole(t, e, nil)
		t.Logf("trial %d: first new connection %s, stream gap %s", i, first.Round(time.Millisecond), gap.Round(time.Millisecond))
		firsts, gaps = append(firsts, first), append(gaps, gap)
		e.l.Restore("isp1")
		e.src.up("isp1")
		time.Sleep(200 * time.Millisecond)
	}
	report(t, "failover-fake-blackhole", firsts, gaps)
}

func benchTrials() int {
	n := 20
	fmt.Sscan(os.Getenv("MULTIHOME_BENCH_TRIALS"), &n)
	return n
}

func report(t *testing.T, name string, firsts, gaps []time.Duration) {
	line := fmt.Sprintf("%s: trials=%d first-new-connection median=%s p95=%s; stream-gap median=%s p95=%s",
		name, len(firsts), pct(firsts, 0.5).Round(time.Millisecond), pct(firsts, 0.95).Round(time.Millisecond),
		pct(gaps, 0.5).Round(time.Millisecond), pct(gaps, 0.95).Round(time.Millisecond))
	benchOut(t, line)
}

// TestBenchFailoverMonitor: the same with the real link monitor at its
// default probe rate (three core targets, each every 200 ms: 15 probes/s
// per link; down after 3 failed probes), so detection is included;
// blackhole and carrier loss. Hold-down is shortened to keep trials quick.
func TestBenchFailoverMonitor(t *testing.T) {
	benchGate(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	var b strings.Builder
	b.WriteString(`defaults:
  health:
    interval: 200ms
    down_after: 3
    up_after: 3
    hold_down: 500ms
links:
`)
	for _, isp := range l.ISPs {
		fmt.Fprintf(&b, "  - {name: %s, interface: %s, gateway4: %s, priority: %d, probes: [{target: 203.0.113.10}, {target: 203.0.113.11}, {target: 203.0.113.12}]}\n", isp.Name, isp.WAN, isp.Router, isp.Index)
	}
	b.WriteString("outbound:\n  policies:\n    - {name: main, type: failover}\n")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "multihome.yaml")
	os.WriteFile(cfgPath, []byte(b.String()), 0o644)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	labtest.StartChild(t, l, lab.RoleGW, "outbound", childEnv+"="+cfgPath)
	e := &env{t: t, l: l, cfg: cfg}
	e.waitFor("both links up and the ruleset in place", 10*time.Second, func() bool {
		s, err := e.viaTimeout("lan1", 300*time.Millisecond)
		if err != nil || s != e.addr("isp1") {
			return false
		}
		out, _ := l.Run(context.Background(), lab.RoleGW, "nft", "list", "chain", "inet", "multihome", "pol0").Output()
		return strings.Contains(string(out), "pick0_0")
	})
	for _, kind := range []lab.FaultKind{lab.Blackhole, lab.CarrierDown} {
		var firsts, gaps []time.Duration
		for i := range benchTrials() {
			stop := make(chan struct{})
			res := make(chan []sample, 1)
			go func() { res <- stream(e, stop) }()
			time.Sleep(300 * time.Millisecond)
			if _, err := l.Fault("isp1", lab.Fault{Kind: kind}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now() // the fault is in place
			time.Sleep(2 * time.Second)
			close(stop)
			first, gap := failoverFigures(<-res, t0, e.addr("isp2"))
			t.Logf("%s trial %d: first new connection %s, stream gap %s", kind, i, first.Round(time.Millisecond), gap.Round(time.Millisecond))
			firsts, gaps = append(firsts, first), append(gaps, gap)
			l.Restore("isp1")
			// Wait for failback (up_after + hold-down) before the next trial.
			e.waitFor("failback", 10*time.Second, func() bool {
				s, err := e.viaTimeout("lan1", 300*time.Millisecond)
				return err == nil && s == e.addr("isp1")
			})
		}
		report(t, "failover-monitor-"+string(kind), firsts, gaps)
	}
}

// TestBenchThroughput: iperf3 LAN → server through the gateway with the
// multihome ruleset vs a plain masquerade-only table, alternating in the
// same run.
func TestBenchThroughput(t *testing.T) {
	benchGate(t)
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed")
	}
	e := newEnv(t, lab.Spec{ISPs: 2}, "")
	srv := e.l.Run(context.Background(), lab.RoleCore, "iperf3", "-s", "-B", e.l.Servers.HTTP.String())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	gw := e.l.NS(lab.RoleGW)
	plain := "table inet mhplain {\n chain nat_out {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname { \"wan1\", \"wan2\" } masquerade\n }\n}\n"
	run := func() float64 {
		out, err := e.l.Run(context.Background(), "lan1", "iperf3", "-c", e.l.Servers.HTTP.String(), "-t", "4", "-J").Output()
		if err != nil {
			t.Fatalf("iperf3: %v", err)
		}
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.End.SumReceived.BitsPerSecond
	}
	var with, without []float64
	for range 3 {
		with = append(with, run())
		// Plain: stop steering (controller down, keeping nothing), NAT only.
		if err := e.stop(); err != nil {
			t.Fatal(err)
		}
		c := mhnetns.Command(context.Background(), gw, "nft", "-f", "-")
		c.Stdin = strings.NewReader(plain)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		without = append(without, run())
		mhnetns.Command(context.Background(), gw, "nft", "delete", "table", "inet", "mhplain").Run()
		e.start()
	}
	slices.Sort(with)
	slices.Sort(without)
	ratio := with[1] / without[1]
	line := fmt.Sprintf("throughput: iperf3 lan1→core 4s ×3 alternating: with multihome median %.2f Gbit/s, plain NAT median %.2f Gbit/s, ratio %.3f", with[1]/1e9, without[1]/1e9, ratio)
	benchOut(t, line)
	t.Logf("with %v without %v", with, without)
}

// TestBenchRuleUpdate: 64 links and 1000 rules: time to apply the whole
// state, and to apply the change after one link fails.
func TestBenchRuleUpdate(t *testing.T) {
	benchGate(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	r := applyBench(t, 64, 1000, 10)
	benchOut(t, fmt.Sprintf("rule update: 64 links × 1000 rules (%d KiB of nft): initial apply %s; one link down: apply median %s p95 %s, then read-back for tamper checks median %s (10 updates)",
		r.size/1024, r.initial.Round(time.Millisecond), pct(r.updates, 0.5).Round(time.Millisecond), pct(r.updates, 0.95).Round(time.Millisecond), pct(r.readbacks, 0.5).Round(time.Millisecond)))
}
