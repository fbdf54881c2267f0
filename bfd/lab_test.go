package bfd

import (
	"context"
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
	l := lab.ForTest(t, lab.Spec{ISPs: 2})
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
	cmd := l.Run(ctx, "isp1", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet mhbfdcut {
  chain in { type filter hook input priority -10; iifname "gw0" drop; }
  chain out { type filter hook output priority -10; oifname "gw0" drop; }
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	at := time.Now()
	dg := waitEvent(t, gw, 2*time.Second, "gw down", to(Down))
	di := waitEvent(t, isp, 2*time.Second, "isp down", to(Down))
	t.Logf("link cut: gw detected after %v (%s), isp after %v (%s)", dg.Time.Sub(at).Round(time.Millisecond), dg.Diag,
		di.Time.Sub(at).Round(time.Millisecond), di.Diag)
	for _, d := range []Event{dg, di} {
		if d.Diag != DiagDetectExpired || d.Time.Sub(at) > 400*time.Millisecond {
			t.Errorf("%s: %s after %v, want detection expired within 300 ms + margin", d.Interface, d.Diag, d.Time.Sub(at))
		}
	}
}
