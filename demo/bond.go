package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// The bonding scene (docs/mptcp.md): downloads from demoBonded go through
// the bond (MPTCP over both ISPs to an aggregator in the core), downloads
// from demoPlain are steered to isp1 as usual.
const (
	demoBonded     = "203.0.113.7:5601"
	demoPlain      = "203.0.113.8:5601"
	demoPlainAddr  = "203.0.113.8/32"
	demoAggregator = "203.0.113.80:7400"
	demoBondKey    = "multihome-demo-bond-key-not-secret"
)

// demoBondConfig is the demo's mptcp, bond and outbound sections: the
// default policy stays weighted over both links (lab.yaml's weights).
func demoBondConfig() string {
	return fmt.Sprintf(`
# added by the demo: bonding (docs/mptcp.md)
mptcp: {}
bond: {aggregator: %q, key: %q, check_interval: 500ms}
outbound:
  policies:
    - {name: default, type: weighted}
    - {name: primary, type: failover}
    - {name: bonded, type: bond, fallback: primary}
  rules:
    - {name: bonded-downloads, dst: [%s/32], policy: bonded}
    - {name: plain-downloads, dst: [%s], policy: primary}
`, demoAggregator, demoBondKey, hostOf(demoBonded), demoPlainAddr)
}

func hostOf(hp string) string {
	h, _, _ := net.SplitHostPort(hp)
	return h
}

// bondStart starts the aggregator (multihome aggregate) and two download
// servers in the core.
func (d *demo) bondStart(ctx context.Context, dir string) error {
	if out, err := d.l.Run(ctx, lab.RoleCore, "ip", "addr", "add", demoPlainAddr, "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("core address for the plain downloads: %v: %s", err, out)
	}
	for _, addr := range []string{demoBonded, demoPlain} {
		ln, err := netns.Listen(ctx, d.l.NS(lab.RoleCore), &net.ListenConfig{}, "tcp", addr)
		if err != nil {
			return err
		}
		go func() { <-ctx.Done(); ln.Close() }()
		go lab.ServeStream(ln, 128<<10, 0, 10*time.Second)
	}
	path := filepath.Join(dir, "aggregate.yaml")
	cfg := fmt.Sprintf("aggregate: {listen: %q, key: %q}\n", demoAggregator, demoBondKey)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := d.l.Run(ctx, lab.RoleCore, d.multihome, "aggregate", "--config", path)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the aggregator: %w", err)
	}
	d.aggregator = cmd
	return nil
}

// bondScene shows one download through the bond over both ISPs going on
// through a blackhole of isp1, then the same download without the bond
// dying.
func (d *demo) bondScene(ctx context.Context) error {
	d.pause(ctx, 2*time.Second)
	d.say("BOND: both ISPs rate-limited to 20Mbit; the LAN host downloads one file from %s, which a rule sends to a bond policy:", hostOf(demoBonded))
	d.say("      the gateway carries the connection over MPTCP, one subflow per ISP, to an aggregator in the core (multihome aggregate)")
	for _, isp := range []string{"isp1", "isp2"} {
		if _, err := d.l.Fault(isp, lab.Fault{Kind: lab.RateLimit, Rate: "20Mbit"}); err != nil {
			return err
		}
	}
	defer func() {
		for _, isp := range []string{"isp1", "isp2"} {
			d.l.Restore(isp, lab.RateLimit)
		}
	}()
	bonded, stall, err := d.downloadThrough(ctx, demoBonded, "isp1 blackholed: the download goes on over isp2")
	if err != nil {
		return err
	}
	d.record("%-12s %-8s bonded download: %s; after isp1's blackhole: %s, longest stall %s", "bond", "isp1+2", bonded[0], bonded[1], stall)
	d.pause(ctx, time.Second)
	d.say("CONTROL: the same download from %s, steered to isp1 as usual (no bond)", hostOf(demoPlain))
	plain, pstall, err := d.downloadThrough(ctx, demoPlain, "isp1 blackholed: the plain download")
	if err != nil {
		return err
	}
	d.record("%-12s %-8s plain download: %s; after isp1's blackhole: %s, longest stall %s", "no bond", "isp1", plain[0], plain[1], pstall)
	return nil
}

// downloadThrough downloads from addr on the LAN host and prints its rate
// every second: 4 s, then isp1 blackholed for 5 s, then isp1 repaired.
// It returns the average rate before and after the blackhole and the
// longest time without a byte after it.
func (d *demo) downloadThrough(ctx context.Context, addr, during string) ([2]string, time.Duration, error) {
	var rates [2]string
	c, err := netns.DialContext(ctx, d.l.NS(d.host()), &net.Dialer{Timeout: 5 * time.Second}, "tcp", addr)
	if err != nil {
		return rates, 0, err
	}
	defer c.Close()
	// The reader keeps the longest time between two reads once watch is
	// set (from the fault on).
	var n, last, maxGap atomic.Int64
	var watch atomic.Bool
	last.Store(time.Now().UnixNano())
	broken := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			k, err := c.Read(buf)
			n.Add(int64(k))
			if k > 0 {
				now := time.Now().UnixNano()
				if gap := now - last.Swap(now); watch.Load() && gap > maxGap.Load() {
					maxGap.Store(gap)
				}
			}
			if err != nil {
				broken <- err
				return
			}
		}
	}()
	second := func(i int) float64 {
		before := n.Load()
		d.pause(ctx, time.Second)
		rate := float64(n.Load()-before) * 8 / 1e6
		select {
		case err := <-broken:
			d.say("      %2d s  %5.1f Mbit/s  connection broken: %v", i+1, rate, err)
			broken <- err
		default:
			d.say("      %2d s  %5.1f Mbit/s", i+1, rate)
		}
		return rate
	}
	var sum [2]float64
	for i := range 9 {
		if i == 4 {
			d.say("FAULT: %s", during)
			if _, err := d.l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
				return rates, 0, err
			}
			watch.Store(true)
		}
		sum[min(i/4, 1)] += second(i)
		if ctx.Err() != nil {
			return rates, 0, ctx.Err()
		}
	}
	rates[0] = fmt.Sprintf("%.1f Mbit/s", sum[0]/4)
	rates[1] = fmt.Sprintf("%.1f Mbit/s", sum[1]/5)
	// A download still stalled at the end counts up to now.
	stall := max(time.Duration(maxGap.Load()), time.Since(time.Unix(0, last.Load()))).Round(10 * time.Millisecond)
	d.say("      before: %s, after the blackhole: %s, longest stall %s", rates[0], rates[1], stall)
	d.say("REPAIR: isp1 restored")
	if err := d.l.Restore("isp1", lab.Blackhole); err != nil {
		return rates, 0, err
	}
	if err := d.waitState(ctx, "isp1", monitor.Up, 30*time.Second); err != nil {
		return rates, 0, err
	}
	return rates, stall, nil
}
