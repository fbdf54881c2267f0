package route

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/multihome/multihome/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testNS makes a throwaway namespace with two dummy uplinks and returns a
// netlink handle in it.
func testNS(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique("mhrt", "")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	h, err := netns.Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	for i, a := range []string{"198.51.100.2/30", "198.51.100.6/30"} {
		// No dummy driver on every kernel: a veth pair, both ends up.
		name := []string{"wan1", "wan2"}[i]
		d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		if err := h.LinkAdd(d); err != nil {
			t.Fatal(err)
		}
		if p, err := h.LinkByName(name + "p"); err == nil {
			h.LinkSetUp(p)
		}
		addr, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(d, addr); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(d); err != nil {
			t.Fatal(err)
		}
	}
	return name, h
}

func testLinks() []Link {
	return []Link{
		{Index: 0, Interface: "wan1", Gateway4: netip.MustParseAddr("198.51.100.1"), Address4: netip.MustParseAddr("198.51.100.2")},
		{Index: 1, Interface: "wan2", Gateway4: netip.MustParseAddr("198.51.100.5")},
	}
}

func TestSetKernel(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	want := DefaultScheme.Desired(testLinks())

	// A foreign rule outside our range must survive everything.
	foreign := netlink.NewRule()
	foreign.Priority = 100
	foreign.Table = 100
	foreign.Mark = 7
	if err := h.RuleAdd(foreign); err != nil {
		t.Fatal(err)
	}

	n, err := m.Set(Outbound, want)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("first Set changed nothing")
	}
	got, err := m.Current(Outbound)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("read back differs:\ngot:\n%s\nwant:\n%s", got, want)
	}
	if n, err := m.Set(Outbound, want); err != nil || n != 0 {
		t.Fatalf("second Set: %d changes, %v; want 0, nil", n, err)
	}

	// Tamper: delete a rule, change a route, add a stray rule in our range.
	nrs, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range nrs {
		if r.Priority == DefaultScheme.PriorityBase+10 {
			if err := h.RuleDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	wan2, _ := h.LinkByName("wan2")
	if err := h.RouteReplace(&netlink.Route{Table: DefaultScheme.Table(0), LinkIndex: wan2.Attrs().Index,
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("198.51.100.5")}); err != nil {
		t.Fatal(err)
	}
	stray := netlink.NewRule()
	stray.Priority = DefaultScheme.PriorityBase + 77
	stray.Table = 5
	if err := h.RuleAdd(stray); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Set(Outbound, want); err != nil || n != 3 {
		t.Fatalf("repair: %d changes, %v; want 3, nil", n, err)
	}
	if got, _ := m.Current(Outbound); got.String() != want.String() {
		t.Fatalf("after repair:\n%s\nwant:\n%s", got, want)
	}

	// A changed desired state (link 1 gains an address) is a small diff.
	links := testLinks()
	links[1].Address4 = netip.MustParseAddr("198.51.100.6")
	if n, err := m.Set(Outbound, DefaultScheme.Desired(links)); err != nil || n != 1 {
		t.Fatalf("add source rule: %d changes, %v; want 1, nil", n, err)
	}

	if _, err := m.Clear(Outbound); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Current(Outbound); len(got.Rules)+len(got.Routes) != 0 {
		t.Fatalf("after Clear:\n%s", got)
	}
	nrs, _ = h.RuleList(netlink.FAMILY_V4)
	found := false
	for _, r := range nrs {
		found = found || r.Priority == 100 && r.Table == 100
	}
	if !found {
		t.Fatal("foreign rule outside the range was removed")
	}
	// Main table untouched: only the connected routes remain.
	rts, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if len(rts) != 2 {
		t.Fatalf("main table has %d routes, want the 2 connected ones", len(rts))
	}
}

func TestSchemeMarks(t *testing.T) {
	s := DefaultScheme
	if s.Mark(0) != 0x10000 || s.Mark(1) != 0x20000 || s.Table(2) != 31002 {
		t.Fatalf("marks %#x %#x table %d", s.Mark(0), s.Mark(1), s.Table(2))
	}
	for i := range 254 {
		if s.LinkOf(s.Mark(i)|0x5) != i {
			t.Fatalf("LinkOf(Mark(%d)) = %d", i, s.LinkOf(s.Mark(i)))
		}
	}
	if s.LinkOf(s.LastResort()) != -1 || s.LinkOf(0x1234) != -1 {
		t.Fatal("LinkOf accepts non-link marks")
	}
}

// outboundManager is a manager in h with the outbound owner's lease of
// the default scheme.
func outboundManager(t *testing.T, h *netlink.Handle) *Manager {
	t.Helper()
	m := NewManager(h)
	if err := m.Lease(Outbound, DefaultScheme.Lease()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLeases: the BGP owner shares outbound's tables through another
// protocol, desired state outside an owner's lease is refused whole, and
// an owner without a lease cannot Set. (No Set here succeeds: the manager
// works in this process's namespace.)
func TestLeases(t *testing.T) {
	m := NewManager(nil)
	if err := m.Lease(Outbound, DefaultScheme.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := m.Lease(BGP, DefaultScheme.BGPLease()); err != nil {
		t.Errorf("bgp's lease of outbound's tables (protocol bgp): %v", err)
	}
	if err := m.Lease(RA, RuleLease(6, DefaultScheme.PriorityBase-100, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Set(RA, State{Rules: []Rule{{Family: 4, Priority: DefaultScheme.PriorityBase - 100, Table: 5}}}); err == nil {
		t.Error("an IPv4 rule in an IPv6-only lease was accepted")
	}
	if _, err := m.Set(RA, State{Rules: []Rule{{Family: 6, Priority: DefaultScheme.PriorityBase + 10, Table: 5}}}); err == nil {
		t.Error("a rule outside the lease was accepted")
	}
	if _, err := m.Set(BGP, State{Rules: []Rule{{Family: 6, Priority: DefaultScheme.PriorityBase + 10, Table: 5}}}); err == nil {
		t.Error("a rule in a lease without rules was accepted")
	}
	if _, err := m.Set(Owner("nobody"), State{}); err == nil {
		t.Error("Set of an owner without a lease was accepted")
	}
}

// TestLeaseMoves: a reload moves outbound's and ra's ranges one after the
// other. A lease overlapping another owner's where that owner wants a
// rule is refused; where it wants none, it is let through and the newer
// lease owns the overlap: the older owner neither deletes nor reports what
// is there, then moves away without touching it.
func TestLeaseMoves(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	out := DefaultScheme.Desired(testLinks())
	if _, err := m.Set(Outbound, out); err != nil {
		t.Fatal(err)
	}
	if err := m.Lease(RA, RuleLease(6, DefaultScheme.PriorityBase, 2)); err == nil {
		t.Error("a lease over outbound's IPv6 suppress and last-resort rules was let through")
	}
	// ipv6.rule_priority 30900 → 31100 first, then outbound 31000 → 31200.
	ra := State{Rules: []Rule{{Family: 6, Priority: 31100, Src: netip.MustParsePrefix("2001:db8:1:100::/64"), Suppress: true}}}
	if err := m.Lease(RA, RuleLease(6, 31100, 2)); err != nil {
		t.Fatalf("a lease over priorities outbound does not use: %v", err)
	}
	if _, err := m.Set(RA, ra); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Set(Outbound, out); n != 0 || err != nil {
		t.Errorf("outbound's Set over ra's rule: %d changes, %v", n, err)
	}
	if n := m.Repair(slogDiscard()); n != 0 {
		t.Errorf("repair with the overlap: %d changes", n)
	}
	moved := Scheme{TableBase: DefaultScheme.TableBase, PriorityBase: 31200, MarkMask: DefaultScheme.MarkMask}
	if err := m.Lease(Outbound, moved.Lease()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Set(Outbound, moved.Desired(testLinks())); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Current(RA); got.String() != ra.String() {
		t.Errorf("ra's rules after outbound moved:\n%s\nwant:\n%s", got, ra)
	}
	nrs, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range nrs {
		if r.Priority >= DefaultScheme.PriorityBase && r.Priority < 31200 {
			t.Errorf("outbound's rule left at its old priority: %+v", r)
		}
	}
}

// TestOwnersKernel: three owners in one namespace through one manager.
// Source rules with suppress and fwmark 0/mask (RA), routes with a metric
// and protocol bgp next to outbound's default (BGP): each owner's Set
// leaves the others' state alone, Current shows each its own, a moved
// RA lease removes the rules at the old priorities, and Repair puts back
// what someone deleted, for every owner.
func TestOwnersKernel(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	if err := m.Lease(BGP, DefaultScheme.BGPLease()); err != nil {
		t.Fatal(err)
	}
	ra := func(p int) Lease { return RuleLease(6, p, 2) }
	if err := m.Lease(RA, ra(30900)); err != nil {
		t.Fatal(err)
	}
	out := DefaultScheme.Desired(testLinks())
	src := netip.MustParsePrefix("2001:db8:1:100::/64")
	raState := func(p int) State {
		return State{Rules: []Rule{
			{Family: 6, Priority: p, Src: src, Suppress: true},
			{Family: 6, Priority: p + 1, Src: src, Table: DefaultScheme.Table(0), Mask: DefaultScheme.MarkMask},
		}}
	}
	bgp := State{Routes: []Route{
		{Family: 4, Table: DefaultScheme.Table(0), Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("198.51.100.1"), Dev: "wan1", Metric: 2048},
		{Family: 4, Table: DefaultScheme.Table(0), Dst: netip.MustParsePrefix("203.0.113.0/25"), Gateway: netip.MustParseAddr("198.51.100.1"), Dev: "wan1", Metric: 2048},
	}}
	for o, st := range map[Owner]State{Outbound: out, RA: raState(30900), BGP: bgp} {
		if _, err := m.Set(o, st); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
	}
	for o, st := range map[Owner]State{Outbound: out, RA: raState(30900), BGP: bgp} {
		if n, err := m.Set(o, st); n != 0 || err != nil {
			t.Errorf("%s: second Set: %d changes, %v", o, n, err)
		}
		if got, err := m.Current(o); err != nil || got.String() != st.String() {
			t.Errorf("%s: Current:\n%s\nwant:\n%s(%v)", o, got, st, err)
		}
	}
	want := "ip -6 rule add pref 30901 from 2001:db8:1:100::/64 fwmark 0x0/0xff0000 lookup 31000\n"
	if s := raState(30900).Rules[1].String() + "\n"; s != want {
		t.Errorf("RA rule renders as %q, want %q", s, want)
	}

	// Someone deletes one rule and one route of each owner: one repair.
	nrs, _ := h.RuleList(netlink.FAMILY_V6)
	for _, r := range nrs {
		if r.Priority == 30900 || r.Priority == DefaultScheme.PriorityBase+1 {
			if err := h.RuleDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	rts, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: DefaultScheme.Table(0)}, netlink.RT_FILTER_TABLE)
	for _, r := range rts {
		if r.Dst != nil && r.Dst.IP.Equal(net.ParseIP("203.0.113.0")) {
			if err := h.RouteDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := m.Repair(slogDiscard()); n != 3 {
		t.Errorf("repair: %d changes, want 3", n)
	}
	for o, st := range map[Owner]State{Outbound: out, RA: raState(30900), BGP: bgp} {
		if got, _ := m.Current(o); got.String() != st.String() {
			t.Errorf("%s after repair:\n%s\nwant:\n%s", o, got, st)
		}
	}

	// The RA lease moves (a reload changed ipv6.rule_priority).
	if err := m.Lease(RA, ra(30800)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Set(RA, raState(30800)); err != nil {
		t.Fatal(err)
	}
	nrs, _ = h.RuleList(netlink.FAMILY_V6)
	for _, r := range nrs {
		if r.Priority == 30900 || r.Priority == 30901 {
			t.Errorf("rule left at the old RA priority: %+v", r)
		}
	}
	for _, o := range []Owner{Outbound, RA, BGP} {
		if _, err := m.Clear(o); err != nil {
			t.Fatal(err)
		}
		if got, _ := m.Current(o); len(got.Rules)+len(got.Routes) != 0 {
			t.Errorf("%s after Clear:\n%s", o, got)
		}
	}
}

// TestRelease: an owner that stops for good (a reload removed its
// section) gives its lease back: its rules are gone, Set without a lease
// is refused, and the range is free for another lease.
func TestRelease(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	if err := m.Lease(RA, RuleLease(6, 30900, 2)); err != nil {
		t.Fatal(err)
	}
	st := State{Rules: []Rule{{Family: 6, Priority: 30900, Src: netip.MustParsePrefix("2001:db8:1:100::/64"), Suppress: true}}}
	if _, err := m.Set(RA, st); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(RA); err != nil {
		t.Fatal(err)
	}
	nrs, _ := h.RuleList(netlink.FAMILY_V6)
	for _, r := range nrs {
		if r.Priority == 30900 {
			t.Errorf("rule left after Release: %+v", r)
		}
	}
	if _, err := m.Set(RA, st); err == nil {
		t.Error("Set after Release was accepted")
	}
	if err := m.Lease(Owner("other"), RuleLease(6, 30900, 2)); err != nil {
		t.Errorf("the released range is not free: %v", err)
	}
	if err := m.Release(BGP); err != nil {
		t.Errorf("Release of an owner without a lease: %v", err)
	}
}
