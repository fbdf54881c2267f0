package bgp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

const (
	sitePrefix4 = "192.0.2.128/25"
	sitePrefix6 = "2001:db8:100::/48"
)

// frrISP is the bgpd configuration of ISP k (AS 64500+k) peering with
// the gateway over IPv4 and IPv6.
func frrISP(k int) string {
	return fmt.Sprintf(`router bgp %d
 bgp router-id 198.51.100.%d
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.51.100.%d remote-as 64500
 neighbor 198.51.100.%d timers 3 9
 neighbor 198.51.100.%d timers connect 1
 neighbor 2001:db8:%d::2 remote-as 64500
 neighbor 2001:db8:%d::2 timers 3 9
 neighbor 2001:db8:%d::2 timers connect 1
 address-family ipv6 unicast
  neighbor 2001:db8:%d::2 activate
 exit-address-family
`, 64500+k, 1+16*(k-1), 2+16*(k-1), 2+16*(k-1), 2+16*(k-1), k, k, k, k)
}

// speakerBGP is the bgp section: ISP 1 primary over IPv4 and IPv6, ISP 2
// backup (3 prepends) with a community.
func speakerBGP(onDown string) string {
	return fmt.Sprintf(`bgp:
  asn: 64500
  prefixes: [%s, "%s"]
  on_down: %s
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, communities: ["64501:100"]}
    - {link: wan1, address: "2001:db8:1::1", asn: 64501}
    - {link: wan2, address: 198.51.100.17, asn: 64502, role: backup, communities: ["64502:80"]}
`, sitePrefix4, sitePrefix6, onDown)
}

// TestLabFRR: the speaker announces the site's prefixes to FRR in both
// ISPs, withdraws them from ISP 1 when a blackhole beyond ISP 1's router
// takes wan1 down (the BGP session itself stays up) and announces them
// again only after the monitor's hold-down.
func TestLabFRR(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrISP(1), "bgpd")
	isp2 := startFRR(t, l.NS("isp2"), frrName(l, "isp2"), frrISP(2), "bgpd")
	c := startSpeaker(t, l, labYAML(speakerBGP("withdraw")))

	c.wait(5*time.Second, "wan1 up", isState("wan1", monitor.Up))
	r1 := waitRoute(t, isp1, "isp1", sitePrefix4, 15*time.Second)
	r2 := waitRoute(t, isp2, "isp2", sitePrefix4, 15*time.Second)
	r6 := waitRoute(t, isp1, "isp1", sitePrefix6, 15*time.Second)
	t.Logf("isp1 %s: %+v; %s: %+v; isp2 %s: %+v", sitePrefix4, r1, sitePrefix6, r6, sitePrefix4, r2)
	if r1.ASPath != "64500" || r1.Communities != "64501:100" {
		t.Errorf("isp1 %s: %+v, want path 64500, community 64501:100", sitePrefix4, r1)
	}
	if r6.ASPath != "64500" || r6.Communities != "" {
		t.Errorf("isp1 %s: %+v, want path 64500, no community", sitePrefix6, r6)
	}
	if r2.ASPath != "64500 64500 64500 64500" || r2.Communities != "64502:80" {
		t.Errorf("isp2 (backup): %+v, want 3 prepends and community 64502:80", r2)
	}
	if _, ok := isp2.lookup(sitePrefix6); ok {
		t.Errorf("isp2 got %s without an IPv6 session", sitePrefix6)
	}
	if !strings.Contains(c.log(), "prefix longer than most networks accept") || !strings.Contains(c.log(), "prefix="+sitePrefix4) {
		t.Errorf("no warning about the /25")
	}
	// The lab's gateway routes the LAN 2001:db8:100::/64 (inside our /48)
	// but nothing in 192.0.2.128/25.
	if !logLine(c.log(), "has no route for", "prefix="+sitePrefix4) {
		t.Errorf("no warning about the unrouted %s", sitePrefix4)
	}
	if logLine(c.log(), "has no route for", "prefix="+sitePrefix6) {
		t.Errorf("warning about %s, which the LAN /64 is part of", sitePrefix6)
	}
	// Nothing else leaks: ISP 2 must not get ISP 1's routes through us
	// (the import policy rejects, the export policy has only our prefixes).
	if out, _ := isp2.vtysh("show bgp ipv4 unicast json"); strings.Contains(string(out), "64501") {
		t.Errorf("isp2 learnt something through AS 64501: %s", out)
	}

	time.Sleep(500 * time.Millisecond)
	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := c.wait(3*time.Second, "wan1 down", isState("wan1", monitor.Down))
	gone, ok := pollUntil(3*time.Second, func() bool { _, ok := isp1.lookup(sitePrefix4); return !ok })
	if !ok {
		t.Fatalf("isp1 still has %s 3s after wan1 went down", sitePrefix4)
	}
	t.Logf("blackhole → wan1 down %v → withdrawn at isp1 %v (total %v)", down.Time.Sub(at).Round(time.Millisecond),
		gone.Sub(down.Time).Round(time.Millisecond), gone.Sub(at).Round(time.Millisecond))
	if _, ok := pollUntil(time.Second, func() bool { _, ok := isp1.lookup(sitePrefix6); return !ok }); !ok {
		t.Errorf("isp1 still has %s", sitePrefix6)
	}
	if r, ok := isp2.lookup(sitePrefix4); !ok || r.ASPath != "64500 64500 64500 64500" {
		t.Errorf("isp2 lost or changed the route: %+v %v", r, ok)
	}
	if !isp1.established("198.51.100.2") {
		t.Errorf("the session to isp1 went down: the withdrawal must not need it to")
	}

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	hd := c.wait(3*time.Second, "wan1 hold-down", func(e monitor.Event) bool { return e.Link == "wan1" && e.Kind == monitor.HoldDownStarted })
	// During the hold-down the route stays withdrawn.
	if _, ok := pollUntil(time.Second, func() bool { _, ok := isp1.lookup(sitePrefix4); return ok }); ok {
		t.Errorf("isp1 got %s back during the hold-down", sitePrefix4)
	}
	up := c.wait(4*time.Second, "wan1 up", isState("wan1", monitor.Up))
	back, ok := pollUntil(3*time.Second, func() bool { _, ok := isp1.lookup(sitePrefix4); return ok })
	if !ok {
		t.Fatalf("isp1 did not get %s back after wan1 came up", sitePrefix4)
	}
	t.Logf("restored: hold-down %v, announced at isp1 %v after up", up.Time.Sub(hd.Time).Round(time.Millisecond), back.Sub(up.Time).Round(time.Millisecond))
	if r, _ := isp1.lookup(sitePrefix4); r.ASPath != "64500" || r.Communities != "64501:100" {
		t.Errorf("isp1 after restore: %+v", r)
	}
}

// TestLabFRRPrepend: with on_down: prepend the route stays at ISP 1 but
// with 6 more copies of our AS while wan1 is down.
func TestLabFRRPrepend(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrISP(1), "bgpd")
	c := startSpeaker(t, l, labYAML(speakerBGP("prepend")))
	c.wait(5*time.Second, "wan1 up", isState("wan1", monitor.Up))
	waitRoute(t, isp1, "isp1", sitePrefix4, 15*time.Second)
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	c.wait(3*time.Second, "wan1 down", isState("wan1", monitor.Down))
	want := strings.TrimSpace(strings.Repeat("64500 ", 7))
	if _, ok := pollUntil(3*time.Second, func() bool { r, _ := isp1.lookup(sitePrefix4); return r.ASPath == want }); !ok {
		r, ok := isp1.lookup(sitePrefix4)
		t.Fatalf("isp1 while wan1 is down: %+v (present %v), want path %q", r, ok, want)
	}
	l.Restore("isp1")
	c.wait(6*time.Second, "wan1 up", isState("wan1", monitor.Up))
	if _, ok := pollUntil(3*time.Second, func() bool { r, _ := isp1.lookup(sitePrefix4); return r.ASPath == "64500" }); !ok {
		t.Errorf("isp1 did not get the plain path back")
	}
}

func waitRoute(t testing.TB, r router, name, prefix string, d time.Duration) route {
	t.Helper()
	var got route
	if _, ok := pollUntil(d, func() bool { var ok bool; got, ok = r.lookup(prefix); return ok }); !ok {
		t.Fatalf("%s has no route to %s after %v", name, prefix, d)
	}
	return got
}

// TestLabBIRD: ISP 2 runs BIRD 2 (ISP 1 FRR); the backup announcement
// carries its prepends and community, and a blackhole behind ISP 2
// withdraws it there.
func TestLabBIRD(t *testing.T) {
	frrAvailable(t)
	birdAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	// FRR as ISP 1 sends a default route and two prefixes of its own: none
	// of it may reach BIRD (ISP 2) through us.
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrImportISP(1, []string{isp1Net4a, isp1Net4b}, nil), "bgpd")
	isp2 := startBIRD(t, l.NS("isp2"), frrName(l, "isp2"), birdISP(2, false))
	c := startSpeaker(t, l, labYAML(speakerBGP("withdraw")))
	c.wait(5*time.Second, "wan2 up", isState("wan2", monitor.Up))
	r := waitRoute(t, isp2, "isp2 (bird)", sitePrefix4, 15*time.Second)
	t.Logf("bird: %+v", r)
	if r.ASPath != "64500 64500 64500 64500" || r.Communities != "64502:80" {
		t.Errorf("bird: %+v, want 3 prepends and community 64502:80", r)
	}
	if r1 := waitRoute(t, isp1, "isp1 (frr)", sitePrefix4, 15*time.Second); r1.ASPath != "64500" {
		t.Errorf("frr: %+v, want AS path 64500", r1)
	}
	for _, p := range []string{isp1Net4a, isp1Net4b, "0.0.0.0/0"} {
		if got, ok := isp2.lookup(p); ok {
			t.Errorf("transit leaked: bird (ISP 2) has ISP 1's %s: %+v", p, got)
		}
	}
	at, err := l.Fault("isp2", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := c.wait(3*time.Second, "wan2 down", isState("wan2", monitor.Down))
	gone, ok := pollUntil(3*time.Second, func() bool { _, ok := isp2.lookup(sitePrefix4); return !ok })
	if !ok {
		t.Fatalf("bird still has %s", sitePrefix4)
	}
	t.Logf("blackhole → wan2 down %v → withdrawn at bird %v", down.Time.Sub(at).Round(time.Millisecond), gone.Sub(down.Time).Round(time.Millisecond))
	l.Restore("isp2")
	c.wait(6*time.Second, "wan2 up", isState("wan2", monitor.Up))
	waitRoute(t, isp2, "isp2 (bird)", sitePrefix4, 3*time.Second)
}

// TestLabBIRDBFD: multihome's BFD against BIRD's (bfd on), and BIRD
// dropping our route when ISP 2's first hop dies.
func TestLabBIRDBFD(t *testing.T) {
	birdAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp2 := startBIRD(t, l.NS("isp2"), frrName(l, "isp2"), birdISP(2, true))
	c := startSpeaker(t, l, labYAML(`bgp:
  asn: 64500
  prefixes: [`+sitePrefix4+`]
  connect_retry: 1s
  neighbors:
    - {link: wan2, address: 198.51.100.17, asn: 64502, bfd: {}}
`))
	c.wait(5*time.Second, "wan2 up", isState("wan2", monitor.Up))
	waitRoute(t, isp2, "isp2 (bird)", sitePrefix4, 15*time.Second)
	if _, ok := pollUntil(10*time.Second, func() bool {
		return strings.Contains(isp2.birdc("show bfd sessions"), "Up")
	}); !ok {
		t.Fatalf("BIRD's BFD session is not up:\n%s", isp2.birdc("show bfd sessions"))
	}
	time.Sleep(2 * time.Second)
	t.Logf("bird bfd:\n%s", isp2.birdc("show bfd sessions"))
	at := time.Now()
	undo := firstHopDown(t, l, "isp2")
	defer undo()
	gone, ok := pollUntil(5*time.Second, func() bool { _, ok := isp2.lookup(sitePrefix4); return !ok })
	if !ok {
		t.Fatalf("BIRD kept our route 5 s after the first hop died")
	}
	t.Logf("first hop down → BIRD dropped our route after %v", gone.Sub(at).Round(time.Millisecond))
	if d := gone.Sub(at); d > 2*time.Second {
		t.Errorf("took %v, want about the 900 ms detection time", d)
	}
	if _, ok := pollUntil(2*time.Second, func() bool { return strings.Contains(c.log(), "bfd session down") }); !ok {
		t.Error("multihome's BFD did not see the session go down")
	}
	if n := strings.Count(c.log(), "bfd session down"); n != 1 {
		t.Errorf("%d BFD down events, want 1 (no flap before the fault)", n)
	}
}

// TestLabFRRSecurity: TCP MD5 (password) and GTSM (ttl-security) with
// FRR; a wrong password never establishes.
func TestLabFRRSecurity(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), `router bgp 64501
 bgp router-id 198.51.100.1
 no bgp ebgp-requires-policy
 neighbor 198.51.100.2 remote-as 64500
 neighbor 198.51.100.2 timers connect 1
 neighbor 198.51.100.2 password s3cret
 neighbor 198.51.100.2 ttl-security hops 1
`, "bgpd")
	isp2 := startFRR(t, l.NS("isp2"), frrName(l, "isp2"), `router bgp 64502
 bgp router-id 198.51.100.17
 no bgp ebgp-requires-policy
 neighbor 198.51.100.18 remote-as 64500
 neighbor 198.51.100.18 timers connect 1
 neighbor 198.51.100.18 password s3cret
`, "bgpd")
	startSpeaker(t, l, labYAML(`bgp:
  asn: 64500
  prefixes: [`+sitePrefix4+`]
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, password: s3cret, ttl_security: true}
    - {link: wan2, address: 198.51.100.17, asn: 64502, password: wrong}
`))
	r := waitRoute(t, isp1, "isp1", sitePrefix4, 15*time.Second)
	if r.ASPath != "64500" {
		t.Errorf("isp1: %+v", r)
	}
	if !isp1.established("198.51.100.2") {
		t.Error("isp1 session not established")
	}
	if isp2.established("198.51.100.18") {
		t.Error("isp2 established with a wrong password")
	}
	if _, ok := isp2.lookup(sitePrefix4); ok {
		t.Error("isp2 has our route despite the wrong password")
	}
}

// logLine reports whether one line of log contains every part.
func logLine(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}
