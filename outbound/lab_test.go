package outbound

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	mhnetns "github.com/multihome/multihome/netns"
	"github.com/multihome/multihome/route"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ti-mo/conntrack"
)

// env is a lab with the controller running in-process inside its gw
// namespace, fed by a fake monitor the test drives.
type env struct {
	t      *testing.T
	l      *lab.Lab
	cfg    *config.Config
	src    *fakeSource
	c      *Controller
	cancel context.CancelFunc
	done   chan error
	// opts are given to New after WithNetns.
	opts []Option
}

// labConfig is the lab's links plus the given outbound section.
func labConfig(t *testing.T, l *lab.Lab, outbound string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("links:\n")
	for _, isp := range l.ISPs {
		fmt.Fprintf(&b, "  - {name: %s, interface: %s, gateway4: %s, priority: %d}\n", isp.Name, isp.WAN, isp.Router, isp.Index)
	}
	b.WriteString(outbound)
	cfg, err := config.Parse("lab.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return cfg
}

func newEnv(t *testing.T, spec lab.Spec, outbound string) *env {
	l := labtest.Up(t, spec)
	e := &env{t: t, l: l, cfg: labConfig(t, l, outbound)}
	e.src = newFakeSource(e.cfg, monitor.Up)
	e.start()
	return e
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) start() {
	e.t.Helper()
	c, err := New(e.cfg, e.src, testLogger(e.t), append([]Option{WithNetns(e.l.NS(lab.RoleGW))}, e.opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.c, e.cancel, e.done = c, cancel, make(chan error, 1)
	go func() { e.done <- c.Run(ctx) }()
	e.t.Cleanup(func() { e.stop() })
	e.waitFor("ruleset applied", 5*time.Second, func() bool {
		out, err := e.l.Run(context.Background(), lab.RoleGW, "nft", "-t", "list", "table", "inet", "multihome").Output()
		return err == nil && strings.Contains(string(out), "chain steer")
	})
}

// stop stops the controller (once) and returns Run's error.
func (e *env) stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("controller did not stop")
	}
}

func (e *env) waitFor(what string, d time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitShare waits until the controller has written a ruleset giving link
// the share want of policy's new flows: the share metric is set right
// after the ruleset is written, so a link event has then reached the
// datapath. (Writing it takes 25 ms on an idle machine, and was seen to
// take 640 ms on a loaded one: a fixed pause is not enough.)
func (e *env) waitShare(policy, link string, want float64) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s's share of policy %s at %v", link, policy, want), 5*time.Second, func() bool {
		return testutil.ToFloat64(e.c.metrics.share.WithLabelValues(policy, link)) == want
	})
}

// addr is the gateway's address on ISP k's link: the source the servers
// see for flows through it.
func (e *env) addr(isp string) string {
	for _, i := range e.l.ISPs {
		if i.Name == isp {
			return i.GW.String()
		}
	}
	e.t.Fatalf("no ISP %s", isp)
	return ""
}

// via opens a new TCP connection from host to the HTTP server and returns
// the source address the server saw.
func (e *env) via(host string) (string, error) { return e.viaTimeout(host, 3*time.Second) }

func (e *env) viaTimeout(host string, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s, err := e.l.Get(ctx, host, "", "/ip")
	return strings.TrimSpace(s), err
}

func (e *env) mustVia(host string) string {
	e.t.Helper()
	s, err := e.via(host)
	if err != nil {
		e.t.Fatalf("GET /ip from %s: %v", host, err)
	}
	return s
}

// echoConn is a long-lived TCP connection to the echo server.
type echoConn struct {
	net.Conn
	r *bufio.Reader
}

func (e *env) echo(host string, port int) *echoConn {
	e.t.Helper()
	c, err := e.l.DialContext(context.Background(), host, "", "tcp", net.JoinHostPort(e.l.Servers.Echo.String(), fmt.Sprint(port)))
	if err != nil {
		e.t.Fatalf("dial echo from %s: %v", host, err)
	}
	e.t.Cleanup(func() { c.Close() })
	ec := &echoConn{Conn: c, r: bufio.NewReader(c)}
	if err := ec.ping(2 * time.Second); err != nil {
		e.t.Fatalf("echo from %s: %v", host, err)
	}
	return ec
}

func (c *echoConn) ping(timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo answered %q", line)
	}
	return nil
}

// flows dumps the gateway's conntrack table.
func (e *env) flows() []conntrack.Flow {
	e.t.Helper()
	f, err := os.Open(mhnetns.Path(e.l.NS(lab.RoleGW)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	fl, err := c.Dump(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return fl
}

// linkOf returns the link the gateway's conntrack assigns to conn ("" if
// none, "gone" if the entry is missing).
func (e *env) linkOf(conn net.Conn) string {
	e.t.Helper()
	la := netip.MustParseAddrPort(conn.LocalAddr().String())
	for _, f := range e.flows() {
		if f.TupleOrig.IP.SourceAddress == la.Addr() && f.TupleOrig.Proto.SourcePort == la.Port() {
			i := route.SchemeFor(e.cfg).LinkOf(f.Mark)
			if i < 0 {
				return ""
			}
			return e.cfg.Links[i].Name
		}
	}
	return "gone"
}

func (e *env) markedFlows() int {
	n := 0
	for _, f := range e.flows() {
		if route.SchemeFor(e.cfg).LinkOf(f.Mark) >= 0 {
			n++
		}
	}
	return n
}

// TestLabWeighted: 3000 new connections split by weight within ±5
// percentage points, each ISP's SNAT address seen by the server. Each
// connection draws its link at random (numgen), so a link's count is
// binomial: with 3000 connections ±5 points is 5.5 standard deviations
// at a share of 1/2 (a correct split fails about once in 20 million
// runs); with 1200 it was 3.5, and a correct split failed about once in
// 1300 runs.
func TestLabWeighted(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 3})
	e := &env{t: t, l: l}
	var b strings.Builder
	b.WriteString("links:\n")
	for k, isp := range l.ISPs {
		fmt.Fprintf(&b, "  - {name: %s, interface: %s, gateway4: %s, weight: %d}\n", isp.Name, isp.WAN, isp.Router, []int{3, 2, 1}[k])
	}
	cfg, err := config.Parse("lab.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	e.cfg, e.src = cfg, newFakeSource(cfg, monitor.Up)
	e.start()

	const n = 3000
	seen := map[string]int{}
	for range n {
		seen[e.mustVia("lan1")]++
	}
	for k, w := range []float64{3, 2, 1} {
		src := l.ISPs[k].GW.String()
		share := float64(seen[src]) / n
		want := w / 6
		t.Logf("%s (%s): %d of %d = %.1f%%, weight share %.1f%%", l.ISPs[k].Name, src, seen[src], n, share*100, want*100)
		if share < want-0.05 || share > want+0.05 {
			t.Errorf("%s got %.1f%% of new connections, want %.1f%% ± 5", l.ISPs[k].Name, share*100, want*100)
		}
	}
	if len(seen) != 3 {
		t.Errorf("server saw sources %v, want exactly the three ISP addresses", seen)
	}
}

const failoverOutbound = `outbound:
  reconcile: 300ms
  policies:
    - {name: main, type: failover}
    - {name: b-only, type: weighted, links: [isp2]}
  default_policy: main
  rules:
    - {name: lan2-on-b, src: [192.0.2.11/32], policy: b-only}
`

// TestLabFailover: blackhole on A → new connections via B within 1 s; a
// connection on B untouched; a connection on A flushed and the retry goes
// via B; failback after hold-down with B's flows staying.
func TestLabFailover(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2, LANHosts: 2}, failoverOutbound)
	a, b := e.addr("isp1"), e.addr("isp2")
	if got := e.mustVia("lan1"); got != a {
		t.Fatalf("before the fault lan1 leaves via %s, want isp1 %s", got, a)
	}
	onA := e.echo("lan1", 7)
	onB := e.echo("lan2", 7)
	if got := e.linkOf(onA); got != "isp1" {
		t.Fatalf("lan1's echo connection is on %q, want isp1", got)
	}
	if got := e.linkOf(onB); got != "isp2" {
		t.Fatalf("lan2's echo connection is on %q, want isp2", got)
	}

	if _, err := e.l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	e.src.down("isp1")
	// New connections succeed via B within 1 s.
	var first time.Duration
	for {
		// Each attempt gives up after 200 ms, as an impatient client would:
		// a SYN sent before the switch waits for its 1 s retransmission.
		if s, err := e.viaTimeout("lan1", 200*time.Millisecond); err == nil && s == b {
			first = time.Since(t0)
			break
		}
		if time.Since(t0) > time.Second {
			t.Fatalf("no new connection via isp2 within 1s of the failure")
		}
	}
	t.Logf("first new connection via isp2 %s after the link-down event", first)
	for range 20 {
		if got := e.mustVia("lan1"); got != b {
			t.Fatalf("after failover a new connection left via %s, want isp2 %s", got, b)
		}
	}
	// The connection on B is untouched.
	if err := onB.ping(time.Second); err != nil {
		t.Fatalf("connection on isp2 broken by the failover: %v", err)
	}
	if got := e.linkOf(onB); got != "isp2" {
		t.Fatalf("connection on isp2 now on %q", got)
	}
	// The connection on A was flushed: it gets reset, and a retry works via B.
	e.waitFor("isp1's flows flushed", 2*time.Second, func() bool { return e.linkOf(onA) != "isp1" })
	if err := onA.ping(5 * time.Second); err == nil {
		t.Fatal("connection on the failed isp1 still answers")
	} else {
		t.Logf("connection on isp1 after the flush: %v", err)
	}
	retry := e.echo("lan1", 7)
	if got := e.linkOf(retry); got != "isp2" {
		t.Fatalf("retried connection on %q, want isp2", got)
	}

	// Failback: hold-down first (no new flows to A), then up.
	if err := e.l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	e.src.holdDown("isp1")
	time.Sleep(100 * time.Millisecond)
	for range 10 {
		if got := e.mustVia("lan1"); got != b {
			t.Fatalf("during hold-down a new connection left via %s, want isp2", got)
		}
	}
	e.src.up("isp1")
	e.waitFor("new connections via isp1 again", time.Second, func() bool { s, _ := e.via("lan1"); return s == a })
	for range 10 {
		if got := e.mustVia("lan1"); got != a {
			t.Fatalf("after failback a new connection left via %s, want isp1", got)
		}
	}
	for _, c := range []*echoConn{retry, onB} {
		if err := c.ping(time.Second); err != nil {
			t.Fatalf("a connection on isp2 broke at failback: %v", err)
		}
		if got := e.linkOf(c); got != "isp2" {
			t.Fatalf("a connection on isp2 moved to %q at failback", got)
		}
	}
}

// TestLabMigrateOnRecovery: a rule with migrate_on_recovery moves its
// flows back to the recovered preferred link.
func TestLabMigrateOnRecovery(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, `outbound:
  policies:
    - {name: main, type: failover}
  rules:
    - {name: echo, proto: tcp, dport: 7, policy: main, migrate_on_recovery: true}
`)
	e.src.down("isp1")
	e.waitShare("main", "isp2", 1)
	c := e.echo("lan1", 7)
	if got := e.linkOf(c); got != "isp2" {
		t.Fatalf("echo on %q while isp1 is down, want isp2", got)
	}
	web := e.echo("lan1", 7) // same rule; both migrate
	e.src.up("isp1")
	e.waitFor("echo flows migrated off isp2", 2*time.Second, func() bool { return e.linkOf(c) != "isp2" && e.linkOf(web) != "isp2" })
	if got := e.echo("lan1", 7); e.linkOf(got) != "isp1" {
		t.Fatalf("new echo connection on %q after recovery, want isp1", e.linkOf(got))
	}
}

// TestLabNowhereToGo: all links down → no flush; last resort main or
// unreachable as configured.
func TestLabNowhereToGo(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, failoverOutbound)
	c := e.echo("lan1", 7)
	before := e.markedFlows()
	e.src.down("isp2")
	e.src.down("isp1")
	// Both events in the datapath (otherwise the reload below could be
	// applied before isp1's event, with isp1 still up), then time for a
	// wrong flush to show.
	e.waitShare("main", "isp1", 0)
	time.Sleep(300 * time.Millisecond)
	if got := e.linkOf(c); got != "isp1" {
		t.Fatalf("with every link down the echo flow is %q, want it kept on isp1", got)
	}
	if err := c.ping(time.Second); err != nil {
		t.Fatalf("echo flow broken with every link down (none is really broken): %v", err)
	}
	if after := e.markedFlows(); after < before {
		t.Fatalf("marked flows went from %d to %d: something was flushed", before, after)
	}
	// Last resort main: the main table's default route (isp1, metric 100).
	if got := e.mustVia("lan1"); got != e.addr("isp1") {
		t.Fatalf("last resort main: left via %s, want the main table's isp1", got)
	}
	// Last resort unreachable: refused at once.
	cfg := labConfig(t, e.l, strings.Replace(failoverOutbound, "{name: main, type: failover}", "{name: main, type: failover, last_resort: unreachable}", 1))
	if err := e.c.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if s, err := e.via("lan1"); err == nil {
		t.Fatalf("last resort unreachable: connection succeeded via %s", s)
	} else if time.Since(start) > 2*time.Second {
		t.Fatalf("last resort unreachable: connection failed only after %s (%v), want an immediate refusal", time.Since(start), err)
	} else {
		t.Logf("last resort unreachable: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	// A link coming back then flushes the flows of the other down link.
	e.src.up("isp2")
	e.waitFor("isp1's flows flushed once isp2 is back", 2*time.Second, func() bool { return e.linkOf(c) != "isp1" })
}

// TestLabSticky: a source keeps its link across many connections, moves
// when that link fails, and stays on its new link after recovery.
func TestLabSticky(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2, LANHosts: 2}, `outbound:
  policies:
    - {name: sticky, type: sticky, sticky_timeout: 1m}
`)
	for _, host := range []string{"lan1", "lan2"} {
		first := e.mustVia(host)
		for range 40 {
			if got := e.mustVia(host); got != first {
				t.Fatalf("%s moved from %s to %s", host, first, got)
			}
		}
	}
	stuck := e.mustVia("lan1")
	var stuckLink, other string
	for _, isp := range e.l.ISPs {
		if isp.GW.String() == stuck {
			stuckLink = isp.Name
		} else {
			other = isp.Name
		}
	}
	e.src.down(stuckLink)
	e.waitFor("lan1 moved", time.Second, func() bool { s, _ := e.via("lan1"); return s == e.addr(other) })
	e.src.up(stuckLink)
	e.waitShare("sticky", stuckLink, 0.5) // the recovery is in the datapath
	for range 20 {
		if got := e.mustVia("lan1"); got != e.addr(other) {
			t.Fatalf("after %s recovered lan1 left via %s, want it to stay on %s", stuckLink, got, other)
		}
	}
}

// TestLabSpillover: with isp1 saturated (tbf on the ISP, monitor says
// saturated) new flows go to isp2; when it clears they use isp1 again.
func TestLabSpillover(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, `outbound:
  policies:
    - {name: main, type: failover, spillover: 90%}
`)
	if got := e.mustVia("lan1"); got != e.addr("isp1") {
		t.Fatalf("unsaturated: via %s, want isp1", got)
	}
	if _, err := e.l.Fault("isp1", lab.Fault{Kind: lab.RateLimit, Rate: "1Mbit"}); err != nil {
		t.Fatal(err)
	}
	e.src.saturate("isp1", true)
	e.waitFor("new flows spill to isp2", time.Second, func() bool { s, _ := e.via("lan1"); return s == e.addr("isp2") })
	for range 10 {
		if got := e.mustVia("lan1"); got != e.addr("isp2") {
			t.Fatalf("isp1 saturated: via %s, want isp2", got)
		}
	}
	e.l.Restore("isp1")
	e.src.saturate("isp1", false)
	e.waitFor("new flows back on isp1", time.Second, func() bool { s, _ := e.via("lan1"); return s == e.addr("isp1") })
}

// TestLabPerRule: TCP 443 only via isp2 while isp2 is up; everything else
// by the default policy.
func TestLabPerRule(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, `outbound:
  policies:
    - {name: main, type: failover}
    - {name: b-only, type: failover, links: [isp2], last_resort: unreachable}
  default_policy: main
  rules:
    - {name: https, proto: tcp, dport: 443, policy: b-only}
`)
	// A TLS-port server in the core that answers with the client's source.
	ln, err := mhnetns.Listen(context.Background(), e.l.NS(lab.RoleCore), nil, "tcp", net.JoinHostPort(e.l.Servers.HTTP.String(), "443"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			io.WriteString(c, host+"\n")
			c.Close()
		}
	}()
	https := func() (string, error) {
		c, err := e.l.DialContext(context.Background(), "lan1", "", "tcp", net.JoinHostPort(e.l.Servers.HTTP.String(), "443"))
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		s, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(s), err
	}
	for range 20 {
		if got, err := https(); err != nil || got != e.addr("isp2") {
			t.Fatalf("TCP 443 via %q (%v), want isp2 only", got, err)
		}
		if got := e.mustVia("lan1"); got != e.addr("isp1") {
			t.Fatalf("TCP 80 via %s, want isp1", got)
		}
	}
	e.src.down("isp2")
	e.waitShare("b-only", "isp2", 0)
	if got, err := https(); err == nil {
		t.Fatalf("TCP 443 with isp2 down went via %s, want unreachable", got)
	}
}

// TestLabGatewayTraffic: the gateway's own connections are steered too,
// and a socket marked with a link's mark (as the monitor's probes are)
// leaves by that link whatever the policy says.
func TestLabGatewayTraffic(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2}, failoverOutbound)
	e.src.down("isp1")
	e.waitShare("main", "isp2", 1)
	if got := e.mustVia(lab.RoleGW); got != e.addr("isp2") {
		t.Fatalf("gateway's own connection left via %s, want isp2", got)
	}
	// A probe marked for isp1 still goes through isp1.
	mark := route.SchemeFor(e.cfg).Mark(0)
	var got string
	err := mhnetns.Do(e.l.NS(lab.RoleGW), func() error {
		d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, rc syscallRawConn) error { return setMark(rc, mark) }}
		c, err := d.Dial("tcp", net.JoinHostPort(e.l.Servers.HTTP.String(), "80"))
		if err != nil {
			return err
		}
		defer c.Close()
		io.WriteString(c, "GET /ip HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		got = strings.TrimSpace(lines[len(lines)-1])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != e.addr("isp1") {
		t.Fatalf("probe marked for isp1 left via %s", got)
	}
}

// TestLabReconcileAndShutdown: tampering is repaired; a restart with
// keep_on_exit adopts the state without breaking flows; a clean stop
// leaves nothing of ours and flushes nothing.
func TestLabReconcileAndShutdown(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2, LANHosts: 2}, failoverOutbound)
	gw := e.l.NS(lab.RoleGW)
	run := func(argv ...string) string {
		out, err := mhnetns.Command(context.Background(), gw, argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
		return string(out)
	}
	listing := run("nft", "-s", "-t", "list", "table", "inet", "multihome")
	rules := run("ip", "rule")
	run("nft", "delete", "table", "inet", "multihome")
	run("ip", "rule", "del", "pref", "31010")
	run("ip", "route", "flush", "table", "31001")
	var lastTable, lastRules, lastRoutes string
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := mhnetns.Command(context.Background(), gw, "nft", "-s", "-t", "list", "table", "inet", "multihome").CombinedOutput()
		r, _ := mhnetns.Command(context.Background(), gw, "ip", "rule").Output()
		rt, _ := mhnetns.Command(context.Background(), gw, "ip", "route", "show", "table", "31001").Output()
		lastTable, lastRules, lastRoutes = string(out), string(r), string(rt)
		if lastTable == listing && lastRules == rules && lastRoutes != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tampering not repaired after 5s:\ntable:\n%s\nwant:\n%s\nrules:\n%s\nwant:\n%s\ntable 31001: %q",
				lastTable, listing, lastRules, rules, lastRoutes)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Restart with keep_on_exit: the new controller adopts, flows survive.
	onB := e.echo("lan2", 7)
	keep := labConfig(t, e.l, failoverOutbound+"  keep_on_exit: true\n")
	if err := e.c.Update(keep); err != nil {
		t.Fatal(err)
	}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if got := run("nft", "-s", "-t", "list", "table", "inet", "multihome"); got != listing {
		t.Fatalf("keep_on_exit: table changed at stop:\n%s", got)
	}
	if err := onB.ping(time.Second); err != nil {
		t.Fatalf("flow broken while stopped with keep_on_exit: %v", err)
	}
	e.cfg = keep
	e.start()
	if err := onB.ping(time.Second); err != nil {
		t.Fatalf("flow broken by the restart: %v", err)
	}
	if got := e.linkOf(onB); got != "isp2" {
		t.Fatalf("flow moved to %q by the restart", got)
	}

	// Clean stop: nothing of ours left, no flow flushed.
	e.cfg = labConfig(t, e.l, failoverOutbound)
	if err := e.c.Update(e.cfg); err != nil {
		t.Fatal(err)
	}
	flowsBefore := len(e.flows())
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := mhnetns.Command(context.Background(), gw, "nft", "list", "table", "inet", "multihome").CombinedOutput(); err == nil {
		t.Fatalf("table left after a clean stop:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		if out := run("ip", fam, "rule"); strings.Contains(out, "310") && strings.Contains(out, "lookup 31") {
			t.Fatalf("ip %s rules left after a clean stop:\n%s", fam, out)
		}
		if out := run("ip", fam, "route", "show", "table", "all"); strings.Contains(out, "table 31") {
			t.Fatalf("ip %s routes left after a clean stop:\n%s", fam, out)
		}
	}
	if after := len(e.flows()); after < flowsBefore {
		t.Fatalf("conntrack went from %d to %d entries at stop", flowsBefore, after)
	}
	if err := onB.ping(time.Second); err != nil {
		t.Logf("flow on isp2 after the clean stop (expected to break without SNAT routing): %v", err)
	}
}
