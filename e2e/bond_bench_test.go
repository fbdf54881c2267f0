package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/netip"

	"github.com/multihome/multihome/bond"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

// benchBondConfig bonds downloads from 203.0.113.7 and steers those from
// 203.0.113.8 by failover (isp1), so one daemon serves both.
var benchBondConfig = twoLinks("", "    priority: 2\n") + `mptcp: {}
bond: {aggregator: 203.0.113.80:7400, key: ` + bondKey + `, max_conns: 1000}
outbound:
  policies:
    - {name: default, type: failover}
    - {name: bonded, type: bond, fallback: default}
  rules:
    - {name: bonded, dst: [203.0.113.7/32], policy: bonded}
    - {name: plain, dst: [203.0.113.8/32], policy: default}
`

// benchOut appends a line to MULTIHOME_BENCH_OUT and the test log.
func benchOut(t *testing.T, format string, a ...any) {
	line := fmt.Sprintf(format, a...)
	t.Log(line)
	if p := os.Getenv("MULTIHOME_BENCH_OUT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

// cpuSeconds is a process's user+system CPU time so far.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// parallel runs n downloads from the LAN host to dst for d (after a
// second of warm-up) and returns the bytes they read in d.
func parallel(t *testing.T, l *lab.Lab, dst string, n int, d time.Duration) int64 {
	var total atomic.Int64
	var counting atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		c, err := netns.DialContext(ctx, l.NS("lan1"), &net.Dialer{Timeout: 5 * time.Second}, "tcp", dst)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 128<<10)
			for ctx.Err() == nil {
				c.SetReadDeadline(time.Now().Add(time.Second))
				k, err := c.Read(buf)
				if counting.Load() {
					total.Add(int64(k))
				}
				if err != nil && err != io.EOF && !os.IsTimeout(err) {
					return
				}
			}
		}()
	}
	time.Sleep(time.Second)
	counting.Store(true)
	time.Sleep(d)
	counting.Store(false)
	cancel()
	wg.Wait()
	return total.Load()
}

// TestBenchMPTCP measures bonding (bench/mptcp.sh, docs/mptcp.md
// "Figures"): throughput over two shaped links, a blackhole of the first
// subflow's link, the proxy's cost on unshaped links, and bad input.
func TestBenchMPTCP(t *testing.T) {
	if os.Getenv("MULTIHOME_BENCH") == "" {
		t.Skip("benchmark: run bench/mptcp.sh")
	}
	requireRoot(t)
	t.Run("shaped", func(t *testing.T) { benchShaped(t) })
	t.Run("cost", func(t *testing.T) { benchCost(t) })
}

func benchLab(t *testing.T, rate string) (*lab.Lab, *daemon, int) {
	l, d := bondLabRate(t, benchBondConfig, false, rate)
	if out, err := netns.Command(context.Background(), l.NS(lab.RoleCore), "ip", "addr", "add", "203.0.113.8/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	serveDownload(t, l, "203.0.113.8:5601")
	agg := startAggregator(t, l)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(d.scrape(), "multihome_bond_aggregator_up") != 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return l, d, agg.Process.Pid
}

func benchShaped(t *testing.T) {
	l, d, _ := benchLab(t, "20mbit")
	linkBytes := func() (float64, float64) {
		p := d.scrape()
		return metricValue(p, `multihome_bond_link_bytes_total{direction="down",link="isp1"}`), metricValue(p, `multihome_bond_link_bytes_total{direction="down",link="isp2"}`)
	}
	for _, c := range []struct{ name, dst string }{{"bonded", "203.0.113.7:5601"}, {"plain (failover, isp1)", "203.0.113.8:5601"}} {
		b1, b2 := linkBytes()
		n := parallel(t, l, c.dst, 1, 10*time.Second)
		a1, a2 := linkBytes()
		benchOut(t, "throughput, one TCP download, two links shaped to 20 Mbit/s, %s: %.1f Mbit/s (bonded bytes down: isp1 %.1f MB, isp2 %.1f MB)", c.name, mbit(n, 10*time.Second), (a1-b1)/1e6, (a2-b2)/1e6)
	}
	page := d.scrape()
	benchOut(t, "bonded connections %v, fallback %v", metricValue(page, `multihome_bond_connections_total{result="bonded"}`), metricValue(page, `multihome_bond_connections_total{result="fallback"}`))
	// Blackhole isp1: the link of the first subflow (the main table's
	// default route) of the bonded download, and the link of the plain one.
	bonded := download(t, l, "203.0.113.7:5601")
	plain := download(t, l, "203.0.113.8:5601")
	time.Sleep(3 * time.Second)
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var bn, pn int64
	var bgap, pgap time.Duration
	var berr, perr error
	wg.Add(2)
	go func() { defer wg.Done(); bn, bgap, berr = bonded.phase(8 * time.Second) }()
	go func() { defer wg.Done(); pn, pgap, perr = plain.phase(8 * time.Second) }()
	wg.Wait()
	benchOut(t, "blackhole of isp1 (first subflow), 8 s after: bonded %.1f Mbit/s, longest stall %v, error %v", mbit(bn, 8*time.Second), bgap.Round(time.Millisecond), berr)
	benchOut(t, "blackhole of isp1, 8 s after: plain (control) %.1f Mbit/s, longest stall %v, error %v", mbit(pn, 8*time.Second), pgap.Round(time.Millisecond), perr)
	l.Restore("isp1", lab.Blackhole)

	// Bad input, straight to the aggregator (header_timeout 1s).
	h, _ := bond.NewHeader(netip4("203.0.113.7:5601"))
	for _, c := range []struct {
		name string
		send []byte
	}{
		{"wrong key", h.Marshal([]byte("not the key, but 32 bytes long.."))},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: aggregator\r\n\r\n")},
		{"stalled header (20 of 67 bytes)", h.Marshal([]byte(bondKey))[:20]},
	} {
		conn, err := netns.DialContext(context.Background(), l.NS(lab.RoleGW), &net.Dialer{}, "tcp", "203.0.113.80:7400")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.Write(c.send)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(conn)
		conn.Close()
		benchOut(t, "bad input, %s: %d bytes answered, closed after %v (%v)", c.name, len(got), time.Since(start).Round(time.Millisecond), err)
	}
}

func benchCost(t *testing.T) {
	l, d, aggPid := benchLab(t, "")
	gwPid := d.cmd.Process.Pid
	for _, n := range []int{1, 100} {
		plain := parallel(t, l, "203.0.113.8:5601", n, 5*time.Second)
		gw0, agg0 := cpuSeconds(t, gwPid), cpuSeconds(t, aggPid)
		start := time.Now()
		bonded := parallel(t, l, "203.0.113.7:5601", n, 5*time.Second)
		took := time.Since(start)
		gwCPU, aggCPU := cpuSeconds(t, gwPid)-gw0, cpuSeconds(t, aggPid)-agg0
		// CPU is counted over the warm-up second too: bytes likewise.
		gb := float64(bonded) / 1e9 * took.Seconds() / 5
		benchOut(t, "unshaped links, %d connection(s): plain %.0f Mbit/s, bonded %.0f Mbit/s (ratio %.2f); CPU per GB bonded: proxy (gateway) %.1f s, aggregator %.1f s",
			n, mbit(plain, 5*time.Second), mbit(bonded, 5*time.Second), float64(bonded)/float64(plain), gwCPU/gb, aggCPU/gb)
	}
}

func netip4(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
