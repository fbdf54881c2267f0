package bgp

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// TestBenchBGP measures, against FRR in ISP 1, the time from a fault to
// the moment FRR no longer has the site's route (polled every ~15 ms
// through vtysh, which adds its own few ms):
//
//   - blackhole beyond ISP 1's router: the monitor declares wan1 down and
//     the speaker sends a withdrawal over the still-working session;
//   - ISP 1's router unreachable over the first hop, with multihome's BFD
//     (300 ms × 3) and FRR's bfdd: FRR drops the session on BFD down;
//   - the same without BFD: FRR keeps the route until its hold timer (9 s)
//     expires, since no withdrawal can reach it.
//
// Run with bench/bgp.sh (MULTIHOME_BENCH=1; MULTIHOME_BENCH_TRIALS).
func TestBenchBGP(t *testing.T) {
	if os.Getenv("MULTIHOME_BENCH") == "" {
		t.Skip("set MULTIHOME_BENCH=1 (bench/bgp.sh)")
	}
	frrAvailable(t)
	trials := 10
	if n, err := strconv.Atoi(os.Getenv("MULTIHOME_BENCH_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	var report []string
	measure := func(name string, n int, bfd bool, fault func(l *lab.Lab) func()) {
		l := labtest.Up(t, lab.Spec{ISPs: 2})
		conf := frrISP(1)
		if bfd {
			conf = frrISPBFD(1)
		}
		isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), conf, "bgpd", "bfdd")
		// Every trial is a flap: damping would suppress the route.
		c := startSpeaker(t, l, labYAML(strings.Replace(speakerBFD(bfd), "bgp:\n", "bgp:\n  damping: {disable: true}\n", 1)))
		c.wait(5*time.Second, "wan1 up", isState("wan1", monitor.Up))
		var d []time.Duration
		for range n {
			// Stable before the fault: the route present and (with BFD)
			// the session up for 3 s in a row, so that FRR's restart of
			// the BFD session after BGP comes up (docs/bgp.md) is over.
			stable := func() bool {
				_, ok := isp1.lookup(sitePrefix4)
				return ok && (!bfd || isp1.bfdStatus("198.51.100.2") == "up")
			}
			for since, deadline := time.Now(), time.Now().Add(60*time.Second); ; {
				if !stable() {
					since = time.Now()
				} else if time.Since(since) > 3*time.Second {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("route or BFD session not stable")
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Duration(time.Now().UnixNano() % int64(300*time.Millisecond)))
			at := time.Now()
			undo := fault(l)
			gone, ok := pollUntil(15*time.Second, func() bool { _, ok := isp1.lookup(sitePrefix4); return !ok })
			if !ok {
				t.Fatalf("%s: route still at FRR after 15 s", name)
			}
			d = append(d, gone.Sub(at))
			undo()
		}
		line := fmt.Sprintf("%-44s %s", name, summary(d))
		t.Log(line)
		report = append(report, line)
	}
	blackhole := func(l *lab.Lab) func() {
		if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
			t.Fatal(err)
		}
		return func() { l.Restore("isp1") }
	}
	firstHop := func(l *lab.Lab) func() { return firstHopDown(t, l, "isp1") }
	measure("blackhole beyond ISP router (withdrawal)", trials, false, blackhole)
	measure("first hop dead, BFD 300ms x3", trials, true, firstHop)
	measure("first hop dead, no BFD (hold time 9s)", trials, false, firstHop)
	for _, l := range report {
		fmt.Println(l)
	}
}

func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("n=%d median %s p95 %s min %s max %s", len(s), r(q(0.5)), r(q(0.95)), r(s[0]), r(s[len(s)-1]))
}
