package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const bgpLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
`

func TestBGPDefaults(t *testing.T) {
	c, err := Parse("bgp.yaml", []byte(bgpLinks+`
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25, "2001:db8:100::/48"]
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501, communities: ["64501:100"]}
    - {link: isp2, address: 198.51.100.17, asn: 64502, role: backup, bfd: {}}
    - {link: isp2, address: "2001:db8:2::1", asn: 64502, prepend: 0, role: backup}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := c.BGP
	if b.OnDown != BGPWithdraw || b.DownPrepend != 6 || b.HoldTime.D() != 9*time.Second || b.ConnectRetry.D() != 5*time.Second {
		t.Errorf("defaults: %+v", b)
	}
	if d := b.Damping; d.Disable || d.HalfLife.D() != 5*time.Minute || d.Suppress != 2500 || d.Reuse != 750 {
		t.Errorf("damping defaults: %+v", d)
	}
	if b.RouterID != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("router id %v, want the first neighbour's local address", b.RouterID)
	}
	n := b.Neighbors
	if n[0].Port != 179 || n[0].Role != BGPPrimary || n[0].EffectivePrepend() != 0 || n[0].LocalAddress != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("neighbour 0: %+v", n[0])
	}
	if n[1].EffectivePrepend() != 3 || n[1].LocalAddress.IsValid() {
		t.Errorf("neighbour 1: prepend %d local %v", n[1].EffectivePrepend(), n[1].LocalAddress)
	}
	if f := n[1].BFD; f.MinTx.D() != 300*time.Millisecond || f.MinRx.D() != 300*time.Millisecond || f.Multiplier != 3 {
		t.Errorf("bfd defaults: %+v", f)
	}
	if n[2].EffectivePrepend() != 0 {
		t.Errorf("explicit prepend 0 on a backup: got %d", n[2].EffectivePrepend())
	}
	if got := b.LongPrefixes(); len(got) != 1 || got[0].String() != "192.0.2.128/25" {
		t.Errorf("long prefixes %v", got)
	}
	if v, err := ParseCommunity("64501:100"); err != nil || v != 64501<<16|100 {
		t.Errorf("community: %v %v", v, err)
	}
}

func TestBGPErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: nope, address: 198.51.100.1, asn: 64501}]}",
			`bgp.yaml:6:66: bgp.neighbors[0].link: unknown link "nope"`},
		{"bgp: {prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501}]}",
			`bgp.asn: missing or reserved AS number 0`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.129/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501}]}",
			`bgp.prefixes[0]: 192.0.2.129/25 has host bits set`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64500}]}",
			`iBGP is not supported`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], on_down: drop, neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501}]}",
			`bgp.on_down: unknown value "drop"`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501, communities: [\"1:70000\"]}]}",
			`bgp.neighbors[0].communities[0]: community "1:70000"`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: \"2001:db8:1::1\", asn: 64501}]}",
			`no prefix of the neighbour's family`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501, role: spare}]}",
			`bgp.neighbors[0].role: unknown value "spare"`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], hold_time: 1s, neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501}]}",
			`bgp.hold_time: must be whole seconds`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], damping: {suppress: 500}, neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501}]}",
			`bgp.damping.reuse: must be 1..suppress-1 (500), got 750`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: []}",
			`bgp.neighbors: missing`},
		{"bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp2, address: 198.51.100.17, asn: 64501, bfd: {multiplier: 300}}]}",
			`bgp.neighbors[0].bfd.multiplier: must be 1..255`},
	} {
		_, err := Parse("bgp.yaml", []byte(bgpLinks+"\n"+tc.yaml+"\n"))
		var es Errors
		if !errors.As(err, &es) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

func TestBGPRouterIDNeeded(t *testing.T) {
	_, err := Parse("bgp.yaml", []byte(`
links: [{name: isp2, interface: wan2, gateway4: 198.51.100.17}]
bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp2, address: 198.51.100.17, asn: 64502}]}
`))
	if err == nil || !strings.Contains(err.Error(), "bgp.router_id: missing") {
		t.Errorf("got %v", err)
	}
}

func FuzzParseBGP(f *testing.F) {
	f.Add([]byte(bgpLinks + `
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25, "2001:db8:100::/48"]
  on_down: prepend
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501, communities: ["64501:100"], password: x, ttl_security: true}
    - {link: isp2, address: 198.51.100.17, asn: 64502, role: backup, prepend: 2, bfd: {min_tx: 100ms, multiplier: 3}}
`))
	f.Add([]byte(bgpLinks + "bgp: {asn: 1, prefixes: [10.0.0.0/8], neighbors: [{link: isp1, address: 10.0.0.1, asn: 2}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err != nil || c.BGP == nil {
			return
		}
		// Whatever passes validation is complete.
		if c.BGP.ASN == 0 || !c.BGP.RouterID.Is4() || len(c.BGP.Prefixes) == 0 || len(c.BGP.Neighbors) == 0 {
			t.Fatalf("accepted an incomplete bgp section: %+v", c.BGP)
		}
		for _, n := range c.BGP.Neighbors {
			if c.LinkByName(n.Link) == nil || n.Port == 0 || n.Role == "" {
				t.Fatalf("accepted neighbour %+v", n)
			}
		}
	})
}

// TestSharedBFD: a link's bfd and a BGP neighbour's bfd to the same
// peer on the same link are one session: accepted when timers and local
// address agree, each with its own hold_up.
func TestSharedBFD(t *testing.T) {
	c, err := Parse("shared.yaml", []byte(`
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2, bfd: {min_tx: 100ms, min_rx: 100ms, hold_up: 1s}}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501, bfd: {min_tx: 100ms, min_rx: 100ms, multiplier: 3}}
`))
	if err != nil {
		t.Fatal(err)
	}
	lf, nf := c.Links[0].BFD, c.BGP.Neighbors[0].BFD
	if lf.Peer != c.BGP.Neighbors[0].Address || lf.Local != c.BGP.Neighbors[0].LocalAddress {
		t.Errorf("link session %v from %v, neighbour %v from %v", lf.Peer, lf.Local, c.BGP.Neighbors[0].Address, c.BGP.Neighbors[0].LocalAddress)
	}
	if lf.HoldUpD() != time.Second || nf.HoldUpD() != DefaultBFDHoldUp {
		t.Errorf("hold-ups %v and %v", lf.HoldUpD(), nf.HoldUpD())
	}
}
