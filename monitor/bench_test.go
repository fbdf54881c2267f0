package monitor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// TestBenchDetect measures the time from fault injection to the Down
// event, for blackholes and carrier loss, over many trials:
//
//	MULTIHOME_BENCH=1 go test ./monitor -run TestBenchDetect -v -count=1
//
// MULTIHOME_BENCH_TRIALS sets the trials per case (default 25). Each case
// runs at 15 probe packets/s per link (3 targets every 200ms, the
// defaults) and at 20 (every 150ms). bench/detect.sh wraps this.
func TestBenchDetect(t *testing.T) {
	if os.Getenv("MULTIHOME_BENCH") == "" {
		t.Skip("benchmark: set MULTIHOME_BENCH=1")
	}
	trials := 25
	if n, err := strconv.Atoi(os.Getenv("MULTIHOME_BENCH_TRIALS")); err == nil && n > 0 {
		trials = n
	}
	var report []string
	for _, interval := range []time.Duration{200 * time.Millisecond, 150 * time.Millisecond} {
		l := labtest.Up(t, lab.Spec{ISPs: 2})
		h := config.Health{Interval: config.Duration(interval), HoldDown: config.Duration(300 * time.Millisecond)}
		cfg := labConfig(l, h)
		c := startChild(t, l, cfg)
		c.upAll(cfg)
		time.Sleep(time.Second)
		rate := float64(len(cfg.Links[0].Probes)) / interval.Seconds()
		for _, kind := range []lab.FaultKind{lab.Blackhole, lab.CarrierDown} {
			// The fault takes effect somewhere inside l.Fault (for a
			// blackhole, an nft process runs twice): the time from its
			// start is an upper bound, from its return a lower one.
			var fromStart, fromEnd []time.Duration
			for range trials {
				// A random phase against the probe schedule.
				time.Sleep(time.Duration(rand.Int64N(int64(interval))))
				start := time.Now()
				at, err := l.Fault("isp1", lab.Fault{Kind: kind})
				if err != nil {
					t.Fatal(err)
				}
				down := c.wait(3*time.Second, "wan1 down", isState("wan1", Down))
				fromStart = append(fromStart, down.Time.Sub(start))
				fromEnd = append(fromEnd, down.Time.Sub(at))
				if err := l.Restore("isp1"); err != nil {
					t.Fatal(err)
				}
				c.wait(5*time.Second, "wan1 up", isState("wan1", Up))
				time.Sleep(500 * time.Millisecond)
			}
			for _, r := range []struct {
				what string
				d    []time.Duration
			}{{"from fault start", fromStart}, {"from fault applied", fromEnd}} {
				line := fmt.Sprintf("%-12s %4.1f pkt/s/link (every %v, 3 targets) %-18s %s", kind, rate, interval, r.what+":", summary(r.d))
				t.Log(line)
				report = append(report, line)
			}
		}
	}
	for _, line := range report {
		fmt.Println(line)
	}
}

func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return percentile(slices.Clone(s), p) }
	r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	return fmt.Sprintf("n=%d median %s p95 %s min %s max %s", len(s), r(q(0.5)), r(q(0.95)), r(s[0]), r(s[len(s)-1]))
}
