package monitor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// These tests check the passive evidence of life (docs/monitor.md,
// "Congestion is not an outage"): a link whose probes drop in a full
// queue is saturated, not down; a blackhole is still caught while a
// download runs through the link.

// demoConfig is the demo's health settings and probe mix (icmp, http,
// dns; examples/lab.yaml), with a capacity of 20 Mbit/s on every link.
func demoConfig(l *lab.Lab) *config.Config {
	h := config.Health{
		Degraded:   config.Quality{Loss: 0.10, RTT: config.Duration(150 * time.Millisecond)},
		Recovered:  config.Quality{Loss: 0.05, RTT: config.Duration(100 * time.Millisecond)},
		Saturation: config.Saturation{After: config.Duration(2 * time.Second)},
	}
	cfg := labConfig(l, h)
	for i := range cfg.Links {
		cfg.Links[i].Capacity = config.Capacity{Down: 20_000_000, Up: 20_000_000}
		cfg.Links[i].Probes = []config.Probe{
			{Type: config.ProbeICMP, Target: lab.ProbeTarget1},
			{Type: config.ProbeHTTP, Target: lab.ProbeTarget2, Path: "/health", ExpectStatus: 200},
			{Type: config.ProbeDNS, Target: lab.DNSServer, Query: "example.com"},
		}
	}
	return cfg
}

// downloads runs n parallel downloads of size bytes each, over and over,
// from the gateway through wan until ctx ends; it returns the bytes
// received so far (read it after wait).
func downloads(ctx context.Context, l *lab.Lab, wan string, n int, size int64) (received *atomic.Int64, wait func()) {
	received = new(atomic.Int64)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c := l.HTTPClient(lab.RoleGW, wan)
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/bytes?n=%d", l.Servers.HTTP, size), nil)
				if err != nil {
					return
				}
				resp, err := c.Do(req)
				if err != nil {
					continue
				}
				k, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				received.Add(k)
			}
		})
	}
	return received, wg.Wait
}

// TestLabSaturatedNotDown rate-limits isp2 to 20 Mbit/s (tbf, 100 ms of
// queue) and fills it with 4 parallel downloads for 6 s, as the demo
// does: the full queue drops probes, yet wan2 must be reported saturated
// and never down; idle wan1 must not move.
func TestLabSaturatedNotDown(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	cfg := demoConfig(l)
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	time.Sleep(time.Second)
	if _, err := l.Fault("isp2", lab.Fault{Kind: lab.RateLimit, Rate: "20Mbit"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	got, wait := downloads(ctx, l, "wan2", 4, 5_000_000)
	sat := c.wait(6*time.Second, "wan2 saturated", func(e Event) bool {
		return e.Kind == SaturationChanged && e.Link == "wan2" && e.Status.Saturated
	})
	t.Logf("saturated after %v: %s", sat.Time.Sub(start).Round(time.Millisecond), sat.Reason)
	c.quiet(time.Until(start.Add(6 * time.Second)))
	mid := c.snapshot()[1]
	wait()
	// Let the queue drain and the last probes come back.
	c.quiet(time.Second)
	took := time.Since(start)
	t.Logf("downloaded %.1f MB in %v through wan2 (%.1f Mbit/s); wan2 under load: state %v, loss %.1f%%, rtt p50 %v p95 %v, rate down %s",
		float64(got.Load())/1e6, took.Round(time.Millisecond), float64(got.Load())*8/took.Seconds()/1e6,
		mid.State, 100*mid.Loss, mid.RTTP50, mid.RTTP95, rateText(mid.RateDown))
	held := strings.Count(c.Log(), "link failure verdict held")
	t.Logf("failure verdicts held on passive evidence: %d; events:%s", held, c.history())
	for _, e := range c.seen {
		if e.Kind == StateChanged && e.To == Down {
			t.Errorf("%s went down under load: %s", e.Link, e.Reason)
		}
		if e.Time.Before(start) {
			continue
		}
		if e.Link == "wan1" && (e.Kind == SaturationChanged || e.Kind == StateChanged) {
			t.Errorf("idle wan1 changed: %s %s→%s %s", e.Kind, e.From, e.To, e.Reason)
		}
	}
	if st := c.snapshot(); st[0].Saturated || st[0].State != Up {
		t.Errorf("wan1: state %v saturated %v", st[0].State, st[0].Saturated)
	}
}

// TestLabBlackholeDuringDownload breaks a link while downloads fill it:
// the traffic stops with the probes, and the link must still go down
// within 1.5 s, whether the download ran unshaped or through a saturated
// 20 Mbit/s queue.
func TestLabBlackholeDuringDownload(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  string // tbf on the ISP, "" for none
		flows int
	}{
		{"unshaped", "", 1},
		{"saturated-20Mbit", "20Mbit", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := labtest.Up(t, lab.Spec{ISPs: 2})
			cfg := demoConfig(l)
			c := startChild(t, l, cfg)
			c.upAll(cfg)
			time.Sleep(time.Second)
			if tc.rate != "" {
				if _, err := l.Fault("isp1", lab.Fault{Kind: lab.RateLimit, Rate: tc.rate}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			got, wait := downloads(ctx, l, "wan1", tc.flows, 1<<40)
			defer wait()
			defer cancel()
			// Let the download run and the RTT estimates settle under it.
			c.quiet(3 * time.Second)
			before := c.snapshot()[0]
			if before.State == Down || before.RateDown < 10_000_000 {
				t.Fatalf("before the fault: state %v, rate down %s", before.State, rateText(before.RateDown))
			}
			at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
			if err != nil {
				t.Fatal(err)
			}
			down := c.wait(3*time.Second, "wan1 down", isState("wan1", Down))
			took := down.Time.Sub(at)
			t.Logf("download at %s, rtt %v: blackhole detected in %v: %s", rateText(before.RateDown), before.RTT.Round(100*time.Microsecond), took.Round(time.Millisecond), down.Reason)
			if took > 1500*time.Millisecond {
				t.Errorf("blackhole during a download detected after %v, want ≤ 1.5s", took)
			}
			for _, e := range c.seen {
				if e.Time.Before(at) && e.Kind == StateChanged && e.To == Down {
					t.Errorf("%s down before the fault: %s", e.Link, e.Reason)
				}
			}
			cancel()
			wait()
			t.Logf("downloaded %.1f MB", float64(got.Load())/1e6)
		})
	}
}
