package config

import (
	"strings"
	"testing"
	"time"
)

// TestBGPNeighborTimers: a neighbour inherits bgp.hold_time and
// bgp.connect_retry unless it sets its own, checked with the same limits.
func TestBGPNeighborTimers(t *testing.T) {
	c, err := Parse("bgp.yaml", []byte(bgpLinks+`
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  hold_time: 30s
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501}
    - {link: isp2, address: 198.51.100.17, asn: 64502, hold_time: 180s, connect_retry: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.BGP.Neighbors
	if n[0].HoldTime.D() != 30*time.Second || n[0].ConnectRetry.D() != DefaultBGPConnectRetry {
		t.Errorf("neighbour 0 timers: hold %v connect_retry %v, want 30s and the default", n[0].HoldTime.D(), n[0].ConnectRetry.D())
	}
	if n[1].HoldTime.D() != 180*time.Second || n[1].ConnectRetry.D() != 2*time.Second {
		t.Errorf("neighbour 1 timers: hold %v connect_retry %v", n[1].HoldTime.D(), n[1].ConnectRetry.D())
	}
	for _, tc := range []struct{ set, want string }{
		{"hold_time: 2s", "bgp.neighbors[0].hold_time: must be whole seconds, 3s..65535s, got 2s"},
		{"hold_time: 3500ms", "bgp.neighbors[0].hold_time: must be whole seconds, 3s..65535s, got 3.5s"},
		{"connect_retry: 500ms", "bgp.neighbors[0].connect_retry: must be whole seconds, at least 1s, got 500ms"},
	} {
		_, err := Parse("bgp.yaml", []byte(bgpLinks+"\nbgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501, "+tc.set+"}]}\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %s", tc.set, err, tc.want)
		}
	}
}
