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
	m := NewManager(h, DefaultScheme)
	want := DefaultScheme.Desired(testLinks())

	// A foreign rule outside our range must survive everything.
	foreign := netlink.NewRule()
	foreign.Priority = 100
	foreign.Table = 100
	foreign.Mark = 7
	if err := h.RuleAdd(foreign); err != nil {
		t.Fatal(err)
	}

	n, err := m.Set(want)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("first Set changed nothing")
	}
	got, err := m.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("read back differs:\ngot:\n%s\nwant:\n%s", got, want)
	}
	if n, err := m.Set(want); err != nil || n != 0 {
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
	if n, err := m.Set(want); err != nil || n != 3 {
		t.Fatalf("repair: %d changes, %v; want 3, nil", n, err)
	}
	if got, _ := m.Current(); got.String() != want.String() {
		t.Fatalf("after repair:\n%s\nwant:\n%s", got, want)
	}

	// A changed desired state (link 1 gains an address) is a small diff.
	links := testLinks()
	links[1].Address4 = netip.MustParseAddr("198.51.100.6")
	if n, err := m.Set(DefaultScheme.Desired(links)); err != nil || n != 1 {
		t.Fatalf("add source rule: %d changes, %v; want 1, nil", n, err)
	}

	if _, err := m.Clear(); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Current(); len(got.Rules)+len(got.Routes) != 0 {
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
