package bfd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// runIn runs a session in namespace ns (sockets are opened there; the
// session then runs on ordinary goroutines) and forwards its events.
func runIn(t *testing.T, ctx context.Context, ns string, p Peer, events chan<- Event) {
	go func() {
		err := netns.Do(ns, func() error {
			return Run(ctx, p, func(e Event) { events <- e }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		})
		if err != nil && ctx.Err() == nil {
			t.Errorf("bfd in %s: %v", ns, err)
		}
	}()
}

func waitEvent(t *testing.T, ch <-chan Event, d time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e := <-ch:
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

func to(s State) func(Event) bool { return func(e Event) bool { return e.To == s } }

// TestLabBFD runs multihome's BFD on both ends of the gateway↔ISP 1 link
// at 100 ms × 3: sessions come up; a forged AdminDown from the peer's
// address with TTL 254 is ignored, the same with TTL 255 takes the session
// down; cutting the link is detected on both sides within the detection
// time.
func TestLabBFD(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}
	gw, isp := make(chan Event, 64), make(chan Event, 64)
	runIn(t, ctx, l.NS("gw"), Peer{Interface: "wan1", Local: netip.MustParseAddr("198.51.100.2"), Remote: netip.MustParseAddr("198.51.100.1"), Config: cfg}, gw)
	runIn(t, ctx, l.NS("isp1"), Peer{Interface: "gw0", Local: netip.MustParseAddr("198.51.100.1"), Remote: netip.MustParseAddr("198.51.100.2"), Config: cfg}, isp)
	waitEvent(t, gw, 5*time.Second, "gw up", to(Up))
	waitEvent(t, isp, 5*time.Second, "isp up", to(Up))
	time.Sleep(500 * time.Millisecond)

	// Forged AdminDown from the ISP's address (another port), TTL 254.
	forge := func(ttl int) {
		lc := &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl) })
			return err
		}}
		pc, err := netns.ListenPacket(ctx, l.NS("isp1"), lc, "udp4", "198.51.100.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		b := (&Packet{Version: 1, State: AdminDown, Diag: DiagAdminDown, DetectMult: 3, MyDisc: 12345}).Append(nil)
		n := 5
		if ttl == 255 {
			n = 1 // one is enough; more would take the re-established session down again
		}
		for range n {
			pc.WriteTo(b, &net.UDPAddr{IP: net.ParseIP("198.51.100.2"), Port: Port})
			time.Sleep(20 * time.Millisecond)
		}
	}
	forge(254)
	select {
	case e := <-gw:
		t.Fatalf("a TTL 254 packet changed the session: %+v", e)
	case <-time.After(500 * time.Millisecond):
	}
	forge(255)
	e := waitEvent(t, gw, time.Second, "gw down on a TTL 255 AdminDown", to(Down))
	if e.Diag != DiagNeighborDown {
		t.Errorf("diag %s", e.Diag)
	}
	// Both come back; log every transition until things are quiet.
	quiet := time.After(3 * time.Second)
	var states [2]State
collect:
	for {
		select {
		case e := <-gw:
			states[0] = e.To
			t.Logf("gw:  %s→%s %s", e.From, e.To, e.Diag)
		case e := <-isp:
			states[1] = e.To
			t.Logf("isp: %s→%s %s", e.From, e.To, e.Diag)
		case <-quiet:
			break collect
		}
	}
	if states != [2]State{Up, Up} {
		t.Fatalf("not up again: %v", states)
	}

	// Cut the link both ways in the ISP's namespace.
	cutAndWaitDown(t, l, gw, isp, "link cut", `iifname "gw0" drop`, `oifname "gw0" drop`)
}

// forge sends count copies of a forged AdminDown to dst port 3784 from
// src (another port than the session's) in namespace ns, with TTL or hop
// limit ttl.
func forge(t *testing.T, ctx context.Context, ns string, src, dst netip.Addr, ttl, count int) {
	t.Helper()
	network, level, opt := "udp4", unix.IPPROTO_IP, unix.IP_TTL
	if dst.Is6() {
		network, level, opt = "udp6", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	}
	lc := &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), level, opt, ttl) })
		return err
	}}
	pc, err := netns.ListenPacket(ctx, ns, lc, network, netip.AddrPortFrom(src, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	b := (&Packet{Version: 1, State: AdminDown, Diag: DiagAdminDown, DetectMult: 3, MyDisc: 12345}).Append(nil)
	for range count {
		if _, err := pc.WriteTo(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, Port))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLabBFD6 is TestLabBFD over IPv6 (RFC 5881 section 5: hop limit
// 255): the session comes up between the global addresses of the
// gateway↔ISP 1 link; a forged AdminDown with hop limit 254 is ignored,
// the same with 255 is not; cutting the link is detected on both sides
// within the detection time. A second pair of sessions between the two
// link-local addresses comes up too.
func TestLabBFD6(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}
	isp := l.ISPs[0]
	gw, ip := make(chan Event, 64), make(chan Event, 64)
	runIn(t, ctx, l.NS("gw"), Peer{Interface: "wan1", Local: isp.GW6, Remote: isp.Router6, Config: cfg}, gw)
	runIn(t, ctx, l.NS("isp1"), Peer{Interface: "gw0", Local: isp.Router6, Remote: isp.GW6, Config: cfg}, ip)
	waitEvent(t, gw, 5*time.Second, "gw up", to(Up))
	waitEvent(t, ip, 5*time.Second, "isp up", to(Up))
	time.Sleep(500 * time.Millisecond)

	forge(t, ctx, l.NS("isp1"), isp.Router6, isp.GW6, 254, 5)
	select {
	case e := <-gw:
		t.Fatalf("a hop limit 254 packet changed the session: %+v", e)
	case <-time.After(500 * time.Millisecond):
	}
	forge(t, ctx, l.NS("isp1"), isp.Router6, isp.GW6, 255, 1)
	if e := waitEvent(t, gw, time.Second, "gw down on a hop limit 255 AdminDown", to(Down)); e.Diag != DiagNeighborDown {
		t.Errorf("diag %s", e.Diag)
	}
	waitEvent(t, gw, 5*time.Second, "gw up again", to(Up))
	time.Sleep(2 * time.Second) // let the ISP side settle too
	for len(gw) > 0 {
		<-gw
	}
	for len(ip) > 0 {
		<-ip
	}

	cutAndWaitDown(t, l, gw, ip, "IPv6 BFD cut",
		`iifname "gw0" meta nfproto ipv6 udp dport 3784 drop`, `oifname "gw0" meta nfproto ipv6 udp dport 3784 drop`)
}

// linkLocal returns the fe80::/64 address of iface in namespace ns.
func linkLocal(t *testing.T, ns, iface string) netip.Addr {
	t.Helper()
	var out netip.Addr
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		as, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
					out = ip
				}
			}
		}
		return nil
	})
	if err != nil || !out.IsValid() {
		t.Fatalf("no link-local address on %s in %s: %v", iface, ns, err)
	}
	return out
}

// TestLabBFDShared runs two sessions over one interface on each side
// (second addresses .3 on ISP 1's router and .4 on the gateway): they
// share the process's UDP 3784 socket of that interface, both come up,
// and cutting one pair takes down only its own sessions. A second session
// to a peer that already has one on the interface is refused.
func TestLabBFDShared(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range [][]string{{"isp1", "198.51.100.3/28", "gw0"}, {"gw", "198.51.100.4/28", "wan1"}} {
		if out, err := l.Run(ctx, c[0], "ip", "addr", "add", c[1], "dev", c[2]).CombinedOutput(); err != nil {
			t.Fatalf("ip addr: %v %s", err, out)
		}
	}
	cfg := Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}
	a := func(s string) netip.Addr { return netip.MustParseAddr("198.51.100." + s) }
	g1, g3, i2, i4 := make(chan Event, 64), make(chan Event, 64), make(chan Event, 64), make(chan Event, 64)
	runIn(t, ctx, l.NS("gw"), Peer{Interface: "wan1", Local: a("2"), Remote: a("1"), Config: cfg}, g1)
	runIn(t, ctx, l.NS("gw"), Peer{Interface: "wan1", Local: a("4"), Remote: a("3"), Config: cfg}, g3)
	runIn(t, ctx, l.NS("isp1"), Peer{Interface: "gw0", Local: a("1"), Remote: a("2"), Config: cfg}, i2)
	runIn(t, ctx, l.NS("isp1"), Peer{Interface: "gw0", Local: a("3"), Remote: a("4"), Config: cfg}, i4)
	for _, c := range []struct {
		ch   chan Event
		what string
	}{{g1, "gw→.1"}, {g3, "gw→.3"}, {i2, ".1→gw"}, {i4, ".3→gw"}} {
		waitEvent(t, c.ch, 5*time.Second, c.what+" up", to(Up))
	}
	err := netns.Do(l.NS("gw"), func() error {
		return Run(ctx, Peer{Interface: "wan1", Remote: a("1"), Config: cfg}, func(Event) {}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	if err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("second session to .1 on wan1: %v, want refused", err)
	}
	time.Sleep(time.Second)
	for len(g1)+len(g3)+len(i2)+len(i4) > 0 {
		select {
		case e := <-g1:
			t.Logf("gw→.1 %s→%s", e.From, e.To)
		case e := <-g3:
			t.Logf("gw→.3 %s→%s", e.From, e.To)
		case e := <-i2:
			t.Logf(".1→gw %s→%s", e.From, e.To)
		case e := <-i4:
			t.Logf(".3→gw %s→%s", e.From, e.To)
		}
	}
	cmd := l.Run(ctx, "isp1", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet mhbfdcut {
  chain in { type filter hook input priority -10; ip daddr 198.51.100.3 udp dport 3784 drop; }
  chain out { type filter hook output priority -10; ip saddr 198.51.100.3 udp dport 3784 drop; }
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	waitEvent(t, g3, 2*time.Second, "gw→.3 down", to(Down))
	waitEvent(t, i4, 2*time.Second, ".3→gw down", to(Down))
	select {
	case e := <-g1:
		t.Errorf("gw→.1 changed when only .3 was cut: %+v", e)
	case e := <-i2:
		t.Errorf(".1→gw changed when only .3 was cut: %+v", e)
	case <-time.After(time.Second):
	}
}

// cutAndWaitDown drops what matches in and out in isp1's namespace and
// waits for both sessions, gw's and isp's, to go down on detection
// timeout: 300 ms at 100 ms × 3, asserted within a generous 1.5 s.
func cutAndWaitDown(t *testing.T, l *lab.Lab, gw, isp <-chan Event, what, in, out string) {
	t.Helper()
	cmd := l.Run(context.Background(), "isp1", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet mhbfdcut {
  chain in { type filter hook input priority -10; %s; }
  chain out { type filter hook output priority -10; %s; }
}
`, in, out))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	at := time.Now()
	dg := waitEvent(t, gw, 2*time.Second, "gw down", to(Down))
	di := waitEvent(t, isp, 2*time.Second, "isp down", to(Down))
	t.Logf("%s: gw detected after %v (%s), isp after %v (%s)", what, dg.Time.Sub(at).Round(time.Millisecond), dg.Diag,
		di.Time.Sub(at).Round(time.Millisecond), di.Diag)
	for _, d := range []Event{dg, di} {
		if d.Diag != DiagDetectExpired || d.Time.Sub(at) > 1500*time.Millisecond {
			t.Errorf("%s: %s after %v, want detection expired within 300 ms (bound 1.5 s)", d.Interface, d.Diag, d.Time.Sub(at))
		}
	}
}
