package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

const bondKey = "e2e-bond-key-0123456789abcdef"

// bondConfig: flows to the download server go through the bond policy
// (bonded=true) or through a failover policy that prefers isp1.
func bondConfig(bonded bool) string {
	policy := "default"
	if bonded {
		policy = "bonded"
	}
	capacity := "    capacity: {down: 20Mbit, up: 20Mbit}\n"
	return twoLinks(capacity, capacity+"    priority: 2\n") + fmt.Sprintf(`mptcp: {}
bond:
  aggregator: 203.0.113.80:7400
  key: %s
  check_interval: 200ms
outbound:
  policies:
    - {name: default, type: failover}
    - {name: bonded, type: bond, fallback: default}
  rules:
    - {name: downloads, dst: [203.0.113.7/32], policy: %s}
`, bondKey, policy)
}

// startAggregator runs `multihome aggregate` in the core namespace.
func startAggregator(t *testing.T, l *lab.Lab) *exec.Cmd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aggregate.yaml")
	cfg := fmt.Sprintf("aggregate: {listen: \"203.0.113.80:7400\", key: %s, header_timeout: 1s}\n", bondKey)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := l.Run(context.Background(), lab.RoleCore, binary, "aggregate", "--config", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := netns.DialContext(context.Background(), l.NS(lab.RoleCore), &net.Dialer{}, "tcp", "203.0.113.80:7400")
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregator not listening after 10 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveDownload serves an endless stream, as fast as the client takes it,
// on addr in the core.
func serveDownload(t *testing.T, l *lab.Lab, addr string) {
	t.Helper()
	serveStream(t, l.NS(lab.RoleCore), &net.ListenConfig{}, addr, 128<<10, 0)
}

// download opens a connection from the LAN host to the download server
// at addr.
func download(t *testing.T, l *lab.Lab, addr string) *stream {
	t.Helper()
	c, err := netns.DialContext(context.Background(), l.NS("lan1"), &net.Dialer{Timeout: 5 * time.Second}, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newStream(c)
}

func mbit(n int64, d time.Duration) float64 { return float64(n) * 8 / d.Seconds() / 1e6 }

// bondLab starts a lab with both ISPs shaped to 20 Mbit/s, the download
// server and the aggregator in the core, and the daemon with cfg.
func bondLab(t *testing.T, cfg string) (*lab.Lab, *daemon) {
	return bondLabWith(t, cfg, true)
}

func bondLabWith(t *testing.T, cfg string, aggregator bool) (*lab.Lab, *daemon) {
	return bondLabRate(t, cfg, aggregator, "20mbit")
}

// bondLabRate is bondLabWith with both ISPs shaped to rate ("" for no
// shaping).
func bondLabRate(t *testing.T, cfg string, aggregator bool, rate string) (*lab.Lab, *daemon) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	for _, isp := range []string{"isp1", "isp2"} {
		if rate == "" {
			break
		}
		if _, err := l.Fault(isp, lab.Fault{Kind: lab.RateLimit, Rate: rate}); err != nil {
			t.Fatal(err)
		}
	}
	serveDownload(t, l, "203.0.113.7:5601")
	if aggregator {
		startAggregator(t, l)
	}
	d := startBothUp(t, l, cfg)
	time.Sleep(500 * time.Millisecond) // endpoints and the aggregator check
	return l, d
}

// TestBondDownload: one TCP download from a LAN host through the bond
// runs faster than one 20 Mbit/s link can carry, and survives a blackhole
// of isp1 (the link of the first subflow) without a reset.
func TestBondDownload(t *testing.T) {
	requireRoot(t)
	l, d := bondLab(t, bondConfig(true))
	s := download(t, l, "203.0.113.7:5601")
	s.phase(2 * time.Second) // slow start, second subflow
	n, gap, err := s.phase(4 * time.Second)
	rate := mbit(n, 4*time.Second)
	t.Logf("bonded: %.1f Mbit/s over two 20 Mbit/s links, longest stall %v", rate, gap.Round(time.Millisecond))
	if err != nil || rate < 30 {
		t.Fatalf("bonded download %.1f Mbit/s (err %v): want ≥ 30 (1.5 × one link)", rate, err)
	}
	noneDegraded(t, d)
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	n, gap, err = s.phase(5 * time.Second)
	t.Logf("isp1 blackholed: %.1f Mbit/s, longest stall %v, err %v", mbit(n, 5*time.Second), gap.Round(time.Millisecond), err)
	if err != nil || gap > 2500*time.Millisecond || mbit(n, 5*time.Second) < 8 {
		t.Errorf("bonded download after isp1's blackhole: err %v, stall %v, %.1f Mbit/s: want no error, stall ≤ 2.5 s, ≥ 8 Mbit/s", err, gap, mbit(n, 5*time.Second))
	}
	// A new download while isp1 (the main table's default route) is dead
	// is bonded too: its first subflow starts from a link that works.
	d.waitState(10*time.Second, "isp1", monitor.Down)
	start := time.Now()
	s2 := download(t, l, "203.0.113.7:5601")
	n, _, err = s2.phase(3 * time.Second)
	t.Logf("new download with isp1 down: %.1f Mbit/s", mbit(n, 3*time.Second))
	if err != nil || mbit(n, 3*time.Second) < 8 {
		t.Errorf("new download with isp1 down: %.1f Mbit/s, err %v", mbit(n, 3*time.Second), err)
	}
	page := d.scrape()
	if v := metricValue(page, `multihome_bond_connections_total{result="bonded"}`); v != 2 {
		t.Errorf("multihome_bond_connections_total{bonded} = %v, want 2 (the second made %v after isp1 went down)", v, time.Since(start))
	}
	for _, link := range []string{"isp1", "isp2"} {
		if v := metricValue(page, fmt.Sprintf(`multihome_bond_link_bytes_total{direction="down",link=%q}`, link)); v < 1e6 {
			t.Errorf("bytes down through %s: %v, want > 1 MB", link, v)
		}
	}
}

// TestBondControl: the same download steered to isp1 without the bond is
// limited to one link, and dies when isp1 is blackholed.
func TestBondControl(t *testing.T) {
	requireRoot(t)
	l, _ := bondLab(t, bondConfig(false))
	s := download(t, l, "203.0.113.7:5601")
	s.phase(2 * time.Second)
	n, _, err := s.phase(4 * time.Second)
	rate := mbit(n, 4*time.Second)
	t.Logf("plain: %.1f Mbit/s", rate)
	if err != nil || rate > 22 || rate < 10 {
		t.Fatalf("plain download %.1f Mbit/s (err %v): want one link's 20", rate, err)
	}
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	n, gap, err := s.phase(6 * time.Second)
	t.Logf("isp1 blackholed: %d bytes in 6 s, longest stall %v, err %v", n, gap.Round(time.Millisecond), err)
	if err == nil && gap < 4*time.Second {
		t.Errorf("the plain download went on (%d bytes, stall %v): the control should die", n, gap)
	}
}

// TestBondFallback: with the aggregator unreachable, the bonded rule's
// downloads still work through its fallback policy (one link's rate);
// once the aggregator is up, new downloads are bonded again.
func TestBondFallback(t *testing.T) {
	requireRoot(t)
	l, d := bondLabWith(t, bondConfig(true), false)
	s := download(t, l, "203.0.113.7:5601")
	s.phase(time.Second)
	n, _, err := s.phase(3 * time.Second)
	t.Logf("aggregator down: %.1f Mbit/s", mbit(n, 3*time.Second))
	if err != nil || mbit(n, 3*time.Second) < 10 {
		t.Fatalf("download with the aggregator down: %.1f Mbit/s, err %v: want the fallback's link", mbit(n, 3*time.Second), err)
	}
	page := d.scrape()
	if v := metricValue(page, "multihome_bond_aggregator_up"); v != 0 {
		t.Errorf("multihome_bond_aggregator_up = %v with no aggregator", v)
	}
	if v := metricValue(page, `multihome_bond_connections_total{result="fallback"}`); v != 1 {
		t.Errorf("fallback connections = %v, want 1", v)
	}
	startAggregator(t, l)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(d.scrape(), "multihome_bond_aggregator_up") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("aggregator not seen up within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s2 := download(t, l, "203.0.113.7:5601")
	s2.phase(time.Second)
	if n, _, err := s2.phase(2 * time.Second); err != nil || n == 0 {
		t.Fatalf("bonded download after the aggregator came back: %d bytes, %v", n, err)
	}
	if v := metricValue(d.scrape(), `multihome_bond_connections_total{result="bonded"}`); v != 1 {
		t.Errorf("bonded connections = %v, want 1", v)
	}
	if _, _, err := s.phase(time.Second); err != nil {
		t.Errorf("the fallback download broke when the aggregator came back: %v", err)
	}
}

// TestBondIPv6: with nat6 steering IPv6 by policy, an IPv6 download from
// the LAN host is bonded too (the proxy reads the IPv6 original
// destination; the header carries it to the aggregator over IPv4).
func TestBondIPv6(t *testing.T) {
	requireRoot(t)
	cfg := strings.Replace(bondConfig(true), "dst: [203.0.113.7/32]", "dst: [2001:db8:ffff::7/128]", 1)
	cfg = strings.Replace(cfg, "outbound:\n", "outbound:\n  nat6: true\n", 1)
	cfg = strings.Replace(cfg, "gateway4: 198.51.100.1\n", "gateway4: 198.51.100.1\n    gateway6: 2001:db8:1::1\n", 1)
	cfg = strings.Replace(cfg, "gateway4: 198.51.100.17\n", "gateway4: 198.51.100.17\n    gateway6: 2001:db8:2::1\n", 1)
	l, d := bondLab(t, cfg)
	serveDownload(t, l, "[2001:db8:ffff::7]:5601")
	s := download(t, l, "[2001:db8:ffff::7]:5601")
	s.phase(2 * time.Second)
	n, _, err := s.phase(3 * time.Second)
	t.Logf("bonded IPv6 download: %.1f Mbit/s", mbit(n, 3*time.Second))
	if err != nil || mbit(n, 3*time.Second) < 30 {
		t.Errorf("bonded IPv6 download %.1f Mbit/s (err %v): want ≥ 30", mbit(n, 3*time.Second), err)
	}
	if v := metricValue(d.scrape(), `multihome_bond_connections_total{result="bonded"}`); v != 1 {
		t.Errorf("bonded connections = %v, want 1", v)
	}
	noneDegraded(t, d)
}

// noneDegraded fails the test if a link of the bond lab was ever judged
// degraded: the bond fills both links by design, and the loss of that
// queue is congestion, not a degraded link (docs/monitor.md, "Queue loss
// is not degradation").
func noneDegraded(t *testing.T, d *daemon) {
	t.Helper()
	page := d.scrape()
	for _, link := range []string{"isp1", "isp2"} {
		if v := metricValue(page, fmt.Sprintf(`multihome_link_state_changes_total{link=%q,to="degraded"}`, link)); v > 0 {
			t.Errorf("%s went degraded %v times while the bond filled it", link, v)
		}
		t.Logf("%s saturated: %v", link, metricValue(page, fmt.Sprintf(`multihome_link_saturated{link=%q}`, link)))
	}
}
