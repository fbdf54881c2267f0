package e2e

import (
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/mptcp"
	"github.com/multihome/multihome/netns"
)

// twoLinks is the start of the bond and MPTCP tests' configs: the lab's
// two ISPs probed every 100 ms, isp1 and isp2 the extra fields of each
// (YAML lines indented as a link's fields, "" for none).
func twoLinks(isp1, isp2 string) string {
	return `
defaults:
  health: {interval: 100ms, down_after: 3, up_after: 3, hold_down: 1s}
links:
  - name: isp1
    interface: wan1
    gateway4: 198.51.100.1
` + isp1 + `    probes: [{target: 203.0.113.10}, {target: 203.0.113.11}]
  - name: isp2
    interface: wan2
    gateway4: 198.51.100.17
` + isp2 + `    probes: [{target: 203.0.113.10}, {target: 203.0.113.11}]
`
}

// hostModeConfig is a host with two uplinks and no LAN: the daemon gives
// each interface its source routing (outbound's per-link tables and
// source rules), probes and an MPTCP endpoint.
var hostModeConfig = twoLinks("", "") + "mptcp: {}\n"

// startBothUp starts the daemon with cfg in l and waits until both links
// are up.
func startBothUp(t *testing.T, l *lab.Lab, cfg string) *daemon {
	t.Helper()
	d, _ := startDaemon(t, l, []byte(cfg))
	d.waitState(15*time.Second, "isp1", monitor.Up)
	d.waitState(15*time.Second, "isp2", monitor.Up)
	return d
}

// stream is a long-lived download: the server writes a paced stream,
// the client reads it and records when each read returned.
type stream struct {
	conn *net.TCPConn
	mu   sync.Mutex
	n    int64
	last time.Time
	gap  time.Duration // longest time between two reads since reset
	err  error
}

// newStream reads c in the background.
func newStream(c net.Conn) *stream {
	s := &stream{conn: c.(*net.TCPConn), last: time.Now()}
	go s.read()
	return s
}

func (s *stream) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.conn.Read(buf)
		now := time.Now()
		s.mu.Lock()
		s.n += int64(n)
		if g := now.Sub(s.last); g > s.gap {
			s.gap = g
		}
		s.last = now
		if err != nil {
			s.err = err
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// phase resets the longest gap and returns the bytes read and the
// longest gap during d.
func (s *stream) phase(d time.Duration) (int64, time.Duration, error) {
	s.mu.Lock()
	n0 := s.n
	s.gap = 0
	s.mu.Unlock()
	time.Sleep(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	gap := max(s.gap, time.Since(s.last))
	return s.n - n0, gap, s.err
}

// servePaced accepts MPTCP connections in ns and writes 16 KiB every
// 10 ms (1.6 MB/s) to each until the test ends.
func servePaced(t *testing.T, ns, addr string) {
	t.Helper()
	lc := &net.ListenConfig{}
	lc.SetMultipathTCP(true)
	serveStream(t, ns, lc, addr, 16<<10, 10*time.Millisecond)
}

// serveStream serves lab.ServeStream on addr in ns until the test ends.
func serveStream(t *testing.T, ns string, lc *net.ListenConfig, addr string, chunk int, pace time.Duration) {
	t.Helper()
	ln, err := netns.Listen(context.Background(), ns, lc, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go lab.ServeStream(ln, chunk, pace, 30*time.Second)
}

// waitSubflows waits until the connection has at least n extra subflows.
func waitSubflows(t *testing.T, c *net.TCPConn, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := mptcp.ConnInfo(c)
		if err == nil && info.Subflows >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection has %d extra subflows after %v, want %d (err %v)", info.Subflows, within, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostModeMPTCP: a host with two interfaces and the daemon managing
// its MPTCP endpoints keeps one long-lived MPTCP download going through a
// carrier loss of wan1, a blackhole of wan2 and a blackhole of wan1, each
// repaired before the next; the download never stalls for long.
func TestHostModeMPTCP(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d := startBothUp(t, l, hostModeConfig)
	gw := l.NS(lab.RoleGW)
	waitEndpoints := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := netns.Command(context.Background(), gw, "ip", "mptcp", "endpoint", "show").CombinedOutput()
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(string(out), w)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("endpoints %q, want %q", out, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEndpoints("198.51.100.2 id 100 subflow dev wan1", "198.51.100.18 id 102 subflow dev wan2")
	// multihome status shows them, from the daemon's own state.
	waitStatus := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := d.cli("status")
			ok := err == nil
			for _, w := range want {
				ok = ok && regexp.MustCompile(w).MatchString(out)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("multihome status (%v):\n%s\nwant every one of %q", err, out, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus(`(?m)^isp1 +up +subflow +100 101$`, `(?m)^100 +198\.51\.100\.2 +subflow +isp1 +wan1$`, `(?m)^102 +198\.51\.100\.18 +subflow +isp2 +wan2$`)

	server := net.JoinHostPort(lab.HTTPServer, "5600")
	servePaced(t, l.NS(lab.RoleCore), server)
	dl := &net.Dialer{Timeout: 5 * time.Second}
	dl.SetMultipathTCP(true)
	c, err := netns.DialContext(context.Background(), gw, dl, "tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if ok, err := tc.MultipathTCP(); !ok || err != nil {
		t.Fatalf("the connection is not MPTCP (%v)", err)
	}
	s := newStream(tc)
	waitSubflows(t, tc, 1, 5*time.Second)
	if n, gap, err := s.phase(time.Second); err != nil || n == 0 {
		t.Fatalf("download does not run: %d bytes, gap %v, err %v", n, gap, err)
	}

	for _, step := range []struct {
		isp   string
		fault lab.FaultKind
	}{{"isp1", lab.CarrierDown}, {"isp2", lab.Blackhole}, {"isp1", lab.Blackhole}} {
		if _, err := l.Fault(step.isp, lab.Fault{Kind: step.fault}); err != nil {
			t.Fatal(err)
		}
		n, gap, err := s.phase(4 * time.Second)
		t.Logf("%s %s: %d bytes in 4 s, longest stall %v", step.isp, step.fault, n, gap.Round(time.Millisecond))
		if err != nil {
			t.Fatalf("%s %s: the download broke: %v", step.isp, step.fault, err)
		}
		// 1.6 MB/s paced: 4 s would carry 6.4 MB; a stall of a few
		// seconds or a dead connection carries far less.
		if n < 2<<20 || gap > 2500*time.Millisecond {
			t.Errorf("%s %s: %d bytes in 4 s, longest stall %v: want ≥ 2 MiB and ≤ 2.5 s", step.isp, step.fault, n, gap)
		}
		d.waitState(10*time.Second, step.isp, monitor.Down)
		waitStatus(`(?m)^` + step.isp + ` +down +none +- +link down$`)
		if err := l.Restore(step.isp); err != nil {
			t.Fatal(err)
		}
		d.waitState(15*time.Second, step.isp, monitor.Up)
		waitEndpoints("198.51.100.2 id 100 subflow dev wan1", "198.51.100.18 id 102 subflow dev wan2")
		waitSubflows(t, tc, 1, 10*time.Second)
	}

	// A new MPTCP connection while the link of the main table's default
	// route (isp1, carrier up) is blackholed: its first subflow would
	// follow that route into the blackhole and the connection would never
	// open; the outbound ruleset steers it to isp2 instead.
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	d.waitState(10*time.Second, "isp1", monitor.Down)
	waitEndpoints("198.51.100.18 id 102 subflow dev wan2")
	began := time.Now()
	c2, err := netns.DialContext(context.Background(), gw, dl, "tcp", server)
	if err != nil {
		t.Fatalf("new MPTCP connection with isp1 (main table's default route) blackholed: %v after %v", err, time.Since(began).Round(time.Millisecond))
	}
	opened := time.Since(began)
	defer c2.Close()
	if ok, err := c2.(*net.TCPConn).MultipathTCP(); !ok || err != nil {
		t.Fatalf("the new connection is not MPTCP (%v)", err)
	}
	s2 := newStream(c2.(*net.TCPConn))
	n, gap, err := s2.phase(2 * time.Second)
	t.Logf("new MPTCP connection with isp1 blackholed: opened in %v, %d bytes in 2 s, longest stall %v", opened.Round(time.Millisecond), n, gap.Round(time.Millisecond))
	if err != nil || n < 1<<20 {
		t.Errorf("new connection with isp1 blackholed: %d bytes in 2 s, err %v: want ≥ 1 MiB", n, err)
	}
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
}
