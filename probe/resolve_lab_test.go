package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// TestLabResolverThroughLink resolves and probes a host name from the
// gateway namespace through each ISP, with the core's DNS server (over
// IPv4 and over IPv6) as the links' resolver: the lookups run in the
// probe's namespace, leave through the probe's link and source address,
// and fail (with the resolver named) when that link is blackholed.
func TestLabResolverThroughLink(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	gw := l.NS(lab.RoleGW)
	dns4 := netip.AddrPortFrom(netip.MustParseAddr(lab.DNSServer), 53)
	dns6 := netip.AddrPortFrom(netip.MustParseAddr(lab.DNSServer6), 53)
	probeHTTP := config.Probe{Type: config.ProbeHTTP, Target: "www.example.com", Path: "/health"}
	for _, isp := range l.ISPs {
		for _, tc := range []struct {
			b    Binding
			want string
			src  netip.Addr
		}{
			{Binding{Interface: isp.WAN, Source4: isp.GW, Resolver: NewResolver(dns4)}, lab.DNSAnswer, isp.GW},
			{Binding{Interface: isp.WAN, Source6: isp.GW6, Resolver: NewResolver(dns6)}, lab.DNSAnswer6, isp.GW6},
		} {
			l.ResetSeen()
			var a netip.Addr
			var err error
			netns.Do(gw, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				a, err = tc.b.Resolver.Lookup(ctx, tc.b, "www.example.com")
				return nil
			})
			if err != nil || a.String() != tc.want {
				t.Errorf("%s via %v: %v, %v; want %s", isp.WAN, tc.b.Resolver.Servers(), a, err, tc.want)
			}
			if seen := l.SeenBy(lab.ServiceDNS); len(seen) != 1 || seen[tc.src.String()] != 1 {
				t.Errorf("%s: queries seen by source %v, want one from %s", isp.WAN, seen, tc.src)
			}
			pr := newIn(t, gw, probeHTTP, tc.b)
			if _, err := probeIn(t, gw, pr, 2*time.Second); err != nil {
				t.Errorf("%s http probe of www.example.com: %v", isp.WAN, err)
			}
			if seen := l.SeenBy(lab.ServiceHTTP); seen[tc.src.String()] != 1 {
				t.Errorf("%s: requests seen by source %v, want one from %s", isp.WAN, seen, tc.src)
			}
		}
	}

	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	for _, isp := range l.ISPs {
		// A fresh resolver: nothing cached.
		b := Binding{Interface: isp.WAN, Source4: isp.GW, Resolver: NewResolver(dns4)}
		pr := newIn(t, gw, probeHTTP, b)
		_, err := probeIn(t, gw, pr, 500*time.Millisecond)
		if isp.Name == "isp1" {
			want := "resolve www.example.com via " + lab.DNSServer + " on " + isp.WAN + ": timeout"
			if err == nil || err.Error() != want {
				t.Errorf("%s blackholed: %v, want %q", isp.WAN, err, want)
			}
		} else if err != nil {
			t.Errorf("%s during isp1's blackhole: %v", isp.WAN, err)
		}
	}
}
