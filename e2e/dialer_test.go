package e2e

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/dialer"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// TestDialer runs the Happy Eyeballs dialer on the two-link host of
// TestHostModeMPTCP, with its links from the daemon's API: a blackholed
// first link and a dead first address each cost at most one stagger, and
// the connection is MPTCP.
func TestDialer(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d := startBothUp(t, l, hostModeConfig)
	gw := l.NS(lab.RoleGW)
	servePaced(t, l.NS(lab.RoleCore), "203.0.113.80:5700")
	// A dead address: the core drops what is sent to it, without a word.
	if out, err := netns.Command(context.Background(), l.NS(lab.RoleCore), "ip", "route", "add", "blackhole", "203.0.113.66/32").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	client, err := api.NewClient(d.api, "")
	if err != nil {
		t.Fatal(err)
	}
	var links []dialer.Link
	if err := netns.Do(gw, func() (err error) { links, err = dialer.LinksFromAPI(context.Background(), client); return err }); err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[0].Addr4 != netip.MustParseAddr("198.51.100.2") || links[1].Addr4 != netip.MustParseAddr("198.51.100.18") {
		t.Fatalf("links from the API: %+v", links)
	}
	dial := func(links []dialer.Link, addrs ...string) (net.Conn, time.Duration) {
		t.Helper()
		dl := &dialer.Dialer{Links: links, Timeout: 5 * time.Second,
			DialFunc: func(ctx context.Context, nd *net.Dialer, network, address string) (net.Conn, error) {
				return netns.DialContext(ctx, gw, nd, network, address)
			},
			Lookup: func(ctx context.Context, network, host string) ([]netip.Addr, error) {
				var out []netip.Addr
				for _, a := range addrs {
					if network == "ip4" {
						out = append(out, netip.MustParseAddr(a))
					}
				}
				return out, nil
			}}
		start := time.Now()
		c, err := dl.DialContext(context.Background(), "tcp", "download.example:5700")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, time.Since(start)
	}

	c, took := dial(links, "203.0.113.80")
	if ok, _ := c.(*net.TCPConn).MultipathTCP(); !ok {
		t.Error("the dialer's connection is not MPTCP")
	}
	t.Logf("both links up: connected in %v from %s", took.Round(time.Millisecond), c.LocalAddr())

	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	c, took = dial(links, "203.0.113.80") // isp1 first, as the API said before the blackhole
	t.Logf("isp1 blackholed: connected in %v from %s", took.Round(time.Millisecond), c.LocalAddr())
	if took > 750*time.Millisecond || !strings.HasPrefix(c.LocalAddr().String(), "198.51.100.18:") {
		t.Errorf("dead first link: connected in %v from %s, want ≤ 750 ms (one 250 ms stagger) from isp2", took, c.LocalAddr())
	}

	c, took = dial(links[1:], "203.0.113.66", "203.0.113.80")
	t.Logf("dead first address: connected in %v to %s", took.Round(time.Millisecond), c.RemoteAddr())
	if took > 750*time.Millisecond || c.RemoteAddr().String() != "203.0.113.80:5700" {
		t.Errorf("dead first address: connected in %v to %s, want ≤ 750 ms to 203.0.113.80", took, c.RemoteAddr())
	}

	// Once the monitor has seen it, the API no longer offers isp1.
	d.waitState(10*time.Second, "isp1", monitor.Down)
	if err := netns.Do(gw, func() (err error) { links, err = dialer.LinksFromAPI(context.Background(), client); return err }); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Name != "isp2" {
		t.Errorf("links from the API with isp1 down: %+v", links)
	}
}
