package dns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// TestLabBlackhole runs the real link monitor and the DNS server in the
// gateway of a two-ISP lab (a child process in the gw namespace), and a
// client in the Internet core that asks for www via each ISP. When ISP 1
// is blackholed, its address leaves the answers within the monitor's
// detection time; when it is repaired, it comes back after the hold-down.
func TestLabBlackhole(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	ctx := context.Background()
	isp1, isp2 := l.ISPs[0], l.ISPs[1]

	// Answers must leave by the link their query came in on: route by
	// source address in the gateway (the outbound subsystem's job in the
	// daemon; done by hand here).
	for _, isp := range l.ISPs {
		table := fmt.Sprint(100 + isp.Index)
		for _, argv := range [][]string{
			{"ip", "route", "add", "default", "via", isp.Router.String(), "dev", isp.WAN, "table", table},
			{"ip", "rule", "add", "from", isp.GW.String(), "table", table, "priority", table},
		} {
			if out, err := l.Run(ctx, lab.RoleGW, argv...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v %s", argv, err, out)
			}
		}
	}

	y := fmt.Sprintf(`
links:
  - {name: isp1, interface: %s, gateway4: %s, priority: 1}
  - {name: isp2, interface: %s, gateway4: %s, priority: 2}
defaults:
  health: {interval: 200ms, down_after: 3, up_after: 5, hold_down: 2s}
dns:
  listen: ["%s:53", "%s:53", "0.0.0.0:5353"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A %[5]s", "ns1 A %[6]s"]
      names:
        - name: www
          ttl: 30s
          min_ttl: 5s
          records: [{link: isp1, a: %[5]s}, {link: isp2, a: %[6]s}]
`, isp1.WAN, isp1.Router, isp2.WAN, isp2.Router, isp1.GW, isp2.GW)
	path := t.TempDir() + "/multihome.yaml"
	if err := os.WriteFile(path, []byte(probesFor(y)), 0o644); err != nil {
		t.Fatal(err)
	}

	labtest.StartChild(t, l, lab.RoleGW, "dns server", childEnv+"="+path)

	// ask queries www A from the core, to the gateway's address on one
	// ISP; it returns the sorted addresses and TTL, or an error.
	ask := func(server string) (string, uint32, error) {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		c, err := l.DialContext(ctx, lab.RoleCore, "", "udp", server)
		if err != nil {
			return "", 0, err
		}
		defer c.Close()
		m := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: 300 * time.Millisecond}).ExchangeWithConnContext(ctx, m, &mdns.Conn{Conn: c})
		if err != nil {
			return "", 0, err
		}
		var ttl uint32
		if len(r.Answer) > 0 {
			ttl = r.Answer[0].Header().Ttl
		}
		return sortedAddrs(r), ttl, nil
	}
	via1, via2 := isp1.GW.String()+":53", isp2.GW.String()+":53"
	both := join(isp1.GW.String(), isp2.GW.String())
	waitFor := func(server, want string, within time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(within)
		var got string
		var err error
		for time.Now().Before(deadline) {
			if got, _, err = ask(server); err == nil && got == want {
				return time.Now()
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("via %s: www A = %q (%v), want %q", server, got, err, want)
		return time.Time{}
	}

	// Both links up: both addresses, via either ISP, and via the wildcard
	// socket, which must answer from the address it was asked on.
	waitFor(via1, both, 10*time.Second)
	waitFor(via2, both, time.Second)
	waitFor(isp2.GW.String()+":5353", both, time.Second)

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	gone := waitFor(via2, isp2.GW.String(), 3*time.Second)
	took := gone.Sub(at)
	t.Logf("isp1 blackholed: its address left the answers via isp2 after %v", took.Round(time.Millisecond))
	if took > 1500*time.Millisecond {
		t.Errorf("address withdrawn after %v, want < 1.5s (3 × 200ms probes + timeout)", took)
	}
	if _, ttl, _ := ask(via2); ttl > 5 {
		t.Errorf("TTL %d right after the change, want min_ttl 5", ttl)
	}
	if _, _, err := ask(via1); err == nil {
		t.Error("query via the blackholed ISP answered")
	}

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	back := waitFor(via2, both, 8*time.Second)
	t.Logf("isp1 repaired: its address came back after %v (up_after 5 × 200ms + hold_down 2s)", back.Sub(restored).Round(time.Millisecond))
	if back.Sub(restored) < 2*time.Second {
		t.Errorf("address back after %v, before the 2s hold-down", back.Sub(restored))
	}
	waitFor(via1, both, time.Second)
}

// probesFor gives each link the lab's three probe targets.
func probesFor(y string) string {
	probes := fmt.Sprintf("probes: [{target: %s}, {target: %s}, {target: %s}]", lab.ProbeTarget1, lab.ProbeTarget2, lab.ProbeTarget3)
	y = strings.Replace(y, "priority: 1}", "priority: 1, "+probes+"}", 1)
	return strings.Replace(y, "priority: 2}", "priority: 2, "+probes+"}", 1)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}
