package demo

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
)

// TestDemoConfig: the configuration the demo gives the daemon (lab.yaml,
// its ipv6 and bgp sections, lanhost) is valid and says what the demo
// shows.
func TestDemoConfig(t *testing.T) {
	isps := []lab.ISP{lab.PlanISP(1), lab.PlanISP(2)}
	cfg, err := demoIPv6Config(string(examples.Lab()), isps)
	if err != nil {
		t.Fatal(err)
	}
	cfg += demoBGPConfig(isps) + demoBondConfig()
	c, err := config.Parse("demo.yaml", []byte(cfg))
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if c.Bond == nil || c.MPTCP == nil || c.Outbound.Rules[0].Policy != "bonded" || c.Outbound.Policies[2].Fallback != "primary" {
		t.Errorf("bond sections: %+v %+v", c.Bond, c.Outbound)
	}
	if c.IPv6 == nil || c.IPv6.LAN != lab.GWLANIface || len(c.IPv6.Prefixes) != 2 {
		t.Fatalf("ipv6 section: %+v", c.IPv6)
	}
	for i, p := range c.IPv6.Prefixes {
		if p.Link != isps[i].Name || p.Prefix != netip.MustParsePrefix([]string{"2001:db8:1:100::/64", "2001:db8:2:100::/64"}[i]) {
			t.Errorf("ipv6 prefix %d: %+v", i, p)
		}
	}
	if !strings.Contains(cfg, "{name: lanhost, ttl: 30s, host6: \"::80\"}") {
		t.Errorf("no lanhost name:\n%s", cfg)
	}
	b := c.BGP
	if b == nil || b.ASN != 64500 || !slices.Equal(b.Prefixes, []netip.Prefix{netip.MustParsePrefix(demoSitePrefix)}) || len(b.Neighbors) != 2 {
		t.Fatalf("bgp section: %+v", b)
	}
	if n := b.Neighbors[0]; n.Link != "isp1" || n.Address != isps[0].Router || n.ASN != 64501 {
		t.Errorf("isp1 neighbour: %+v", n)
	}
	if n := b.Neighbors[1]; n.Link != "isp2" || n.Address != isps[1].Router || n.ASN != 64502 || n.Role != "backup" {
		t.Errorf("isp2 neighbour: %+v", n)
	}
	// The site prefix is not the lab's LAN: announcing it changes nothing
	// of the LAN's (translated) IPv4 traffic.
	if site, lan := netip.MustParsePrefix(demoSitePrefix), netip.MustParsePrefix(lab.LANPrefix); site.Overlaps(lan) {
		t.Errorf("site prefix %s overlaps the lab's LAN %s", site, lan)
	}
	if _, err := demoIPv6Config("links: []\n", isps); err == nil {
		t.Errorf("demoIPv6Config accepted a config without dns names")
	}
}

// TestDemoFRRConfig: each ISP's bgpd peers with the gateway's address on
// its link, from the ISP's AS.
func TestDemoFRRConfig(t *testing.T) {
	c := demoFRRConfig(lab.PlanISP(2))
	for _, want := range []string{"router bgp 64502\n", " neighbor 198.51.100.18 remote-as 64500\n", " no bgp ebgp-requires-policy\n", " bgp router-id 198.51.100.17\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("isp2's bgpd config lacks %q:\n%s", want, c)
		}
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, syscall.EPIPE
	}
	f.n--
	return len(p), nil
}

// TestOutputStop: the demo stops (its context is cancelled) when its
// output can no longer be written (demo | head), not before.
func TestOutputStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := &outputStop{w: &failingWriter{n: 1}, cancel: cancel}
	if _, err := o.Write([]byte("first\n")); err != nil || ctx.Err() != nil {
		t.Fatalf("first write: %v, ctx %v", err, ctx.Err())
	}
	if _, err := o.Write([]byte("second\n")); !errors.Is(err, syscall.EPIPE) || ctx.Err() == nil {
		t.Fatalf("write to a closed pipe: %v, ctx %v; want EPIPE and a cancelled context", err, ctx.Err())
	}
}
