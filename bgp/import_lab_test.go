package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	mhroute "github.com/multihome/multihome/route"
)

// frrImportISP is ISP k's bgpd config (frrISP) sending the gateway a
// default route over both sessions and the given prefixes (network
// statements: no route needed in FRR's RIB).
func frrImportISP(k int, v4, v6 []string) string {
	var s strings.Builder
	s.WriteString(frrISP(k))
	gw4, gw6 := fmt.Sprintf("198.51.100.%d", 2+16*(k-1)), fmt.Sprintf("2001:db8:%d::2", k)
	fmt.Fprintf(&s, "router bgp %d\n address-family ipv4 unicast\n  neighbor %s default-originate\n", 64500+k, gw4)
	for _, p := range v4 {
		fmt.Fprintf(&s, "  network %s\n", p)
	}
	fmt.Fprintf(&s, " exit-address-family\n address-family ipv6 unicast\n  neighbor %s default-originate\n", gw6)
	for _, p := range v6 {
		fmt.Fprintf(&s, "  network %s\n", p)
	}
	s.WriteString(" exit-address-family\n")
	return s.String()
}

// vtyConf runs configuration commands in FRR's bgpd.
func (f *frr) vtyConf(cmds ...string) {
	f.t.Helper()
	args := []string{"-N", f.name, "-d", "bgpd", "-c", "configure terminal"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput(); err != nil {
		f.t.Fatalf("vtysh %v: %v: %s", cmds, err, out)
	}
}

// kroute is a route of a gateway table as the test reads it back.
type kroute struct {
	Dst    string
	Via    string
	Dev    string
	Metric int
}

func (r kroute) String() string {
	return fmt.Sprintf("%s via %s dev %s metric %d", r.Dst, r.Via, r.Dev, r.Metric)
}

// bgpRoutes returns table's protocol-bgp routes in the namespace of h,
// sorted.
func bgpRoutes(t testing.TB, h *netlink.Handle, table int) []string {
	t.Helper()
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rts, err := h.RouteListFiltered(fam, &netlink.Route{Table: table, Protocol: mhroute.ProtoBGP}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rts {
			k := kroute{Dst: routeDst(r, fam).String(), Metric: r.Priority}
			if a, ok := netip.AddrFromSlice(r.Gw); ok {
				k.Via = a.Unmap().String()
			}
			if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
				k.Dev = l.Attrs().Name
			}
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return out
}

// waitTable polls table until its bgp routes are want (sorted) or d
// passes; it returns when they matched.
func waitTable(t testing.TB, h *netlink.Handle, table int, want []string, d time.Duration) time.Time {
	t.Helper()
	sort.Strings(want)
	var got []string
	at, ok := pollUntil(d, func() bool { got = bgpRoutes(t, h, table); return slices.Equal(got, want) })
	if !ok {
		t.Fatalf("table %d after %v:\n  %s\nwant:\n  %s", table, d, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return at
}

func isReason(link string, to monitor.State, reason string) func(monitor.Event) bool {
	return func(e monitor.Event) bool {
		return e.Kind == monitor.StateChanged && e.Link == link && e.To == to && strings.Contains(e.Reason, reason)
	}
}

const (
	isp1Net4a = "203.0.113.0/25"
	isp1Net4b = "203.0.113.128/26"
	isp1Net6  = "2001:db8:ff00::/40"
	isp2Net4  = "203.0.113.192/26"
)

// TestLabBGPImport: FRR as two ISPs sending a default route and a few
// prefixes. wan1 imports everything from ISP 1 (IPv4 with
// require_default, IPv6), wan2 only the default from ISP 2. The routes
// land in the links' tables with protocol bgp and metric 2048, follow the
// default's withdrawal and return, the sessions' state and the speaker's
// life; require_default reports wan1 down while ISP 1 sends no default;
// nothing imported leaks to the other ISP; route.Manager leaves them.
func TestLabBGPImport(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrImportISP(1, []string{isp1Net4a, isp1Net4b}, []string{isp1Net6}), "bgpd")
	isp2 := startFRR(t, l.NS("isp2"), frrName(l, "isp2"), frrImportISP(2, []string{isp2Net4}, nil), "bgpd")
	c := startSpeaker(t, l, labYAML(fmt.Sprintf(`bgp:
  asn: 64500
  prefixes: [%s, "%s"]
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, import: full, require_default: true}
    - {link: wan1, address: "2001:db8:1::1", asn: 64501, import: full}
    - {link: wan2, address: 198.51.100.17, asn: 64502, import: default}
`, sitePrefix4, sitePrefix6)))
	h, err := netns.Handle(l.NS(lab.RoleGW))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	t1, t2 := mhroute.DefaultScheme.Table(0), mhroute.DefaultScheme.Table(1)
	def4 := "0.0.0.0/0 via 198.51.100.1 dev wan1 metric 2048"
	def6 := "::/0 via 2001:db8:1::1 dev wan1 metric 2048"
	v6 := isp1Net6 + " via 2001:db8:1::1 dev wan1 metric 2048"
	v4 := []string{isp1Net4a + " via 198.51.100.1 dev wan1 metric 2048", isp1Net4b + " via 198.51.100.1 dev wan1 metric 2048"}
	full1 := append([]string{def4, def6, v6}, v4...)
	only2 := []string{"0.0.0.0/0 via 198.51.100.17 dev wan2 metric 2048"}

	// (a) import full, both families; (b) import default.
	c.wait(10*time.Second, "wan1 up", isState("wan1", monitor.Up))
	waitTable(t, h, t1, full1, 20*time.Second)
	waitTable(t, h, t2, only2, 10*time.Second)
	if logLine(c.log(), "sends no default route") {
		t.Errorf("require_default fired while ISP 1 sent its default:\n%s", c.log())
	}

	// (g) no transit: each ISP has our prefix, none has the other's.
	waitRoute(t, isp1, "isp1", sitePrefix4, 10*time.Second)
	waitRoute(t, isp2, "isp2", sitePrefix4, 10*time.Second)
	for _, p := range []string{isp1Net4a, isp1Net4b} {
		if r, ok := isp2.lookup(p); ok {
			t.Errorf("isp2 learnt ISP 1's %s through us: %+v", p, r)
		}
	}
	if r, ok := isp1.lookup(isp2Net4); ok {
		t.Errorf("isp1 learnt ISP 2's %s through us: %+v", isp2Net4, r)
	}
	for _, isp := range []*frr{isp1, isp2} {
		if out, _ := isp.vtysh("show bgp ipv4 unicast json"); strings.Contains(string(out), "64500 6450") {
			t.Errorf("%s has a path through AS 64500 to another AS: %s", isp.name, out)
		}
	}

	// (h) package route's Manager, with the usual desired state for both
	// links, leaves the imported routes alone, and so does Clear.
	m := mhroute.NewManager(h)
	if err := m.Lease(mhroute.Outbound, mhroute.DefaultScheme.Lease()); err != nil {
		t.Fatal(err)
	}
	links := []mhroute.Link{
		{Index: 0, Interface: "wan1", Gateway4: netip.MustParseAddr("198.51.100.1"), Gateway6: netip.MustParseAddr("2001:db8:1::1"), Address4: netip.MustParseAddr("198.51.100.2")},
		{Index: 1, Interface: "wan2", Gateway4: netip.MustParseAddr("198.51.100.17"), Address4: netip.MustParseAddr("198.51.100.18")},
	}
	if _, err := m.Set(mhroute.Outbound, mhroute.DefaultScheme.Desired(links)); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Set(mhroute.Outbound, mhroute.DefaultScheme.Desired(links)); err != nil || n != 0 {
		t.Errorf("second Set: %d changes, %v", n, err)
	}
	if got := bgpRoutes(t, h, t1); !slices.Equal(got, sortedCopy(full1)) {
		t.Errorf("after route.Manager.Set, table %d: %v", t1, got)
	}
	if _, err := m.Clear(mhroute.Outbound); err != nil {
		t.Fatal(err)
	}
	if got := bgpRoutes(t, h, t2); !slices.Equal(got, only2) {
		t.Errorf("after route.Manager.Clear, table %d: %v", t2, got)
	}

	// (c) ISP 1 stops sending the IPv4 default: it leaves the table and,
	// with require_default, wan1 is reported down (past the grace after
	// the session came up, which the sleep makes sure of).
	time.Sleep(defaultGrace)
	at := time.Now()
	isp1.vtyConf("router bgp 64501", "address-family ipv4 unicast", "no neighbor 198.51.100.2 default-originate")
	gone := waitTable(t, h, t1, append([]string{def6, v6}, v4...), 5*time.Second)
	down := c.wait(5*time.Second, "wan1 down (no default)", isReason("wan1", monitor.Down, "sends no default route"))
	t.Logf("default withdrawn by FRR → gone from table %d after %v, wan1 down after %v (%s)", t1,
		gone.Sub(at).Round(time.Millisecond), down.Time.Sub(at).Round(time.Millisecond), down.Reason)
	// The speaker holds wan1 down: the probes, which succeed, cannot bring
	// it back (they would within up_after + hold-down, about 2.5 s).
	held := time.After(6 * time.Second)
hold:
	for {
		select {
		case e := <-c.events:
			if e.Kind == monitor.StateChanged && e.Link == "wan1" && e.To != monitor.Down {
				t.Fatalf("wan1 %s while ISP 1 sends no default (require_default): %s", e.To, e.Reason)
			}
		case <-held:
			break hold
		}
	}

	// (d) the default comes back: back in the table, the hold is
	// released and the probes bring wan1 up for good.
	at = time.Now()
	isp1.vtyConf("router bgp 64501", "address-family ipv4 unicast", "neighbor 198.51.100.2 default-originate")
	back := waitTable(t, h, t1, full1, 5*time.Second)
	t.Logf("default re-sent by FRR → back in table %d after %v", t1, back.Sub(at).Round(time.Millisecond))
	c.wait(15*time.Second, "wan1 up (default back)", isState("wan1", monitor.Up))
	stay := time.After(3 * time.Second)
wait:
	for {
		select {
		case e := <-c.events:
			if e.Kind == monitor.StateChanged && e.Link == "wan1" && e.To == monitor.Down {
				t.Fatalf("wan1 down again with the default present: %s", e.Reason)
			}
		case <-stay:
			break wait
		}
	}

	// (e) the IPv4 session goes down: its routes leave; the IPv6
	// session's stay.
	at = time.Now()
	isp1.vtyConf("router bgp 64501", "neighbor 198.51.100.2 shutdown")
	gone = waitTable(t, h, t1, []string{def6, v6}, 10*time.Second)
	t.Logf("session shut down by FRR → IPv4 routes gone after %v", gone.Sub(at).Round(time.Millisecond))
	if !strings.Contains(c.log(), "bgp session state changed") {
		t.Error("no session state change logged")
	}
	isp1.vtyConf("router bgp 64501", "no neighbor 198.51.100.2 shutdown")
	waitTable(t, h, t1, full1, 20*time.Second)

	// (f) the speaker stops: nothing imported is left.
	c.Stdin.Close()
	if _, ok := pollUntil(10*time.Second, func() bool {
		select {
		case _, open := <-c.events:
			return !open
		default:
			return false
		}
	}); !ok {
		t.Fatal("speaker did not stop")
	}
	for _, tbl := range []int{t1, t2} {
		if got := bgpRoutes(t, h, tbl); len(got) > 0 {
			t.Errorf("table %d after the speaker stopped: %v", tbl, got)
		}
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestLabBGPImportTiming measures, over 10 trials, the time from FRR
// being told to stop (and to resume) sending the default route to its
// removal from (return to) the link's table; the median is in
// docs/bgp.md. Each must be under 3 s.
func TestLabBGPImportTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing trials skipped in -short mode")
	}
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	isp1 := startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrImportISP(1, []string{isp1Net4a}, nil), "bgpd")
	c := startSpeaker(t, l, labYAML(`bgp:
  asn: 64500
  prefixes: [`+sitePrefix4+`]
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, import: default}
`))
	h, err := netns.Handle(l.NS(lab.RoleGW))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tbl := mhroute.DefaultScheme.Table(0)
	def4 := []string{"0.0.0.0/0 via 198.51.100.1 dev wan1 metric 2048"}
	c.wait(10*time.Second, "wan1 up", isState("wan1", monitor.Up))
	waitTable(t, h, tbl, def4, 20*time.Second)
	var gone, back, vty []time.Duration
	for range 10 {
		at := time.Now()
		isp1.vtyConf("router bgp 64501", "address-family ipv4 unicast", "no neighbor 198.51.100.2 default-originate")
		vty = append(vty, time.Since(at))
		gone = append(gone, waitTable(t, h, tbl, nil, 3*time.Second).Sub(at))
		time.Sleep(200 * time.Millisecond)
		at = time.Now()
		isp1.vtyConf("router bgp 64501", "address-family ipv4 unicast", "neighbor 198.51.100.2 default-originate")
		back = append(back, waitTable(t, h, tbl, def4, 3*time.Second).Sub(at))
		time.Sleep(200 * time.Millisecond)
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return ((d[len(d)/2-1] + d[len(d)/2]) / 2).Round(time.Millisecond)
	}
	t.Logf("default withdrawn at FRR → gone from table %d: median %v (min %v, max %v); re-sent → back: median %v (min %v, max %v); vtysh itself: median %v",
		tbl, med(gone), slices.Min(gone).Round(time.Millisecond), slices.Max(gone).Round(time.Millisecond),
		med(back), slices.Min(back).Round(time.Millisecond), slices.Max(back).Round(time.Millisecond), med(vty))
}
