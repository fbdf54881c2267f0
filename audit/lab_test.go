package audit

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }

// labConfig probes two lab servers through each ISP of l.
func labConfig(t *testing.T, l *lab.Lab) *config.Config {
	y := "links:\n"
	for _, isp := range l.ISPs {
		y += fmt.Sprintf("  - {name: %s, interface: %s, gateway4: %s, gateway6: %s, probes: [{target: %s}, {type: tcp, target: \"%s:80\"}, {target: \"%s\"}]}\n",
			isp.Name, isp.WAN, isp.Router, isp.Router6, lab.ProbeTarget1, lab.HTTPServer, lab.ProbeTarget61)
	}
	return parse(t, y)
}

func discover(t *testing.T, l *lab.Lab, c *config.Config, method string) *Discovery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var d *Discovery
	err := netns.Do(l.NS(lab.RoleGW), func() error {
		var err error
		d, err = Discover(ctx, c, DiscoverOptions{MaxTTL: 8, Timeout: 300 * time.Millisecond, Method: method})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Paths {
		t.Logf("%s → %s: reached %v, hops %+v %s", p.Link, p.Target, p.Reached, p.Hops, p.Error)
	}
	return d
}

func TestDiscoverSharedUpstream(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2, SharedUpstream: true})
	c := labConfig(t, l)
	for _, method := range []string{"both", "udp"} {
		t.Run(method, func(t *testing.T) {
			d := discover(t, l, c, method)
			if len(d.Paths) != 6 {
				t.Fatalf("%d paths, want 6", len(d.Paths))
			}
			for _, p := range d.Paths {
				if !p.Reached || len(p.Hops) != 3 {
					t.Errorf("%s → %s: reached %v in %d hops, want 3", p.Link, p.Target, p.Reached, len(p.Hops))
				}
			}
			fs := d.Findings(c)
			var shared []Finding
			for _, f := range fs {
				if f.Check == "shared-hop" {
					shared = append(shared, f)
				} else {
					t.Errorf("unexpected finding %+v", f)
				}
			}
			if method == "udp" {
				// No Record Route: the upstream answers each ISP from
				// another address, and nothing tells they are one router.
				return
			}
			// The shared router: its address toward each ISP and its
			// forward address toward the core (Record Route).
			up1, up2 := l.ISPs[0].UplinkPeer, l.ISPs[1].UplinkPeer
			if len(d.Shared) != 1 {
				t.Fatalf("shared hops %+v, want the upstream router", d.Shared)
			}
			s := d.Shared[0]
			if !slices.Contains(s.Addrs, up1) || !slices.Contains(s.Addrs, up2) || !slices.Equal(s.Links, []string{"isp1", "isp2"}) {
				t.Errorf("shared hop %+v, want %s and %s via isp1 and isp2", s, up1, up2)
			}
			if len(shared) != 1 || shared[0].Severity != High {
				t.Errorf("findings %+v, want one high shared-hop", shared)
			}
			r := Static(c)
			r.AddDiscovery(c, d)
			if n := r.Graph.Node("router:" + s.Addrs[0].String()); n == nil || !n.SPOF {
				t.Errorf("shared router not in the graph as a SPOF: %+v", r.Graph.Nodes)
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("report:\n%s", text.String())
			if !strings.Contains(text.String(), "[HIGH] shared-hop") {
				t.Errorf("text report lacks the shared hop:\n%s", text.String())
			}
		})
	}
}

func TestDiscoverDisjoint(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	c := labConfig(t, l)
	d := discover(t, l, c, "both")
	for _, p := range d.Paths {
		gw := c.LinkByName(p.Link).Gateway4
		if p.Target.Is6() {
			gw = c.LinkByName(p.Link).Gateway6
		}
		if !p.Reached || len(p.Hops) != 2 || p.Hops[0].Addr != gw {
			t.Errorf("%s → %s: %+v", p.Link, p.Target, p)
		}
	}
	if len(d.Shared) != 0 {
		t.Errorf("shared hops %+v, want none: the core is the target's own network", d.Shared)
	}
	if fs := d.Findings(c); len(fs) != 0 {
		t.Errorf("findings %+v", fs)
	}
	// No link can be traced: an error, not findings.
	bad := parse(t, "links: [{name: x, interface: nosuch0, gateway4: 198.51.100.1, probes: [{target: 203.0.113.10}]}]")
	if err := netns.Do(l.NS(lab.RoleGW), func() error {
		_, err := Discover(context.Background(), bad, DiscoverOptions{MaxTTL: 2, Timeout: 50 * time.Millisecond})
		return err
	}); err == nil || !strings.Contains(err.Error(), "no link could be traced") {
		t.Errorf("discover over a missing interface: %v", err)
	}
	// A link whose next hop does not answer the probes: a blackholed ISP.
	if _, err := l.Fault("isp2", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	c2 := parse(t, fmt.Sprintf("links:\n  - {name: isp1, interface: wan1, gateway4: %s, probes: [{target: %s}]}\n  - {name: isp2, interface: wan2, gateway4: %s, probes: [{target: %s}]}\n",
		l.ISPs[0].Router, lab.ProbeTarget2, l.ISPs[1].Router, lab.ProbeTarget2))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var d2 *Discovery
	if err := netns.Do(l.NS(lab.RoleGW), func() error {
		var err error
		d2, err = Discover(ctx, c2, DiscoverOptions{MaxTTL: 3, Timeout: 100 * time.Millisecond, Method: "icmp"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range d2.Findings(c2) {
		got = append(got, f.Check+" "+f.Elements[0])
	}
	if !slices.Equal(got, []string{"discover-unreachable link:isp2"}) {
		t.Errorf("findings %q", got)
	}
}
