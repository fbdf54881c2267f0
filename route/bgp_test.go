package route

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestSetLeavesBGPRoutes: routes with protocol bgp in a link's table (the
// BGP speaker's imports) are neither reported, counted nor deleted by Set
// or Clear, while the same routes with another protocol are removed.
func TestSetLeavesBGPRoutes(t *testing.T) {
	_, h := testNS(t)
	m := outboundManager(t, h)
	want := DefaultScheme.Desired(testLinks())
	if _, err := m.Set(Outbound, want); err != nil {
		t.Fatal(err)
	}
	wan1, err := h.LinkByName("wan1")
	if err != nil {
		t.Fatal(err)
	}
	tbl := DefaultScheme.Table(0)
	mk := func(proto netlink.RouteProtocol) []*netlink.Route {
		return []*netlink.Route{
			{Table: tbl, LinkIndex: wan1.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
				Gw: net.ParseIP("198.51.100.1"), Protocol: proto, Priority: 20},
			{Table: tbl, LinkIndex: wan1.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("203.0.113.0"), Mask: net.CIDRMask(25, 32)},
				Gw: net.ParseIP("198.51.100.1"), Protocol: proto, Priority: 20},
			{Table: tbl, LinkIndex: wan1.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("2001:db8:ff00::"), Mask: net.CIDRMask(40, 128)},
				Protocol: proto, Priority: 20, Family: netlink.FAMILY_V6},
		}
	}
	count := func(proto netlink.RouteProtocol) int {
		n := 0
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			rts, err := h.RouteListFiltered(fam, &netlink.Route{Table: tbl, Protocol: proto}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
			if err != nil {
				t.Fatal(err)
			}
			n += len(rts)
		}
		return n
	}
	for _, r := range mk(ProtoBGP) {
		if err := h.RouteAdd(r); err != nil {
			t.Fatalf("add %v: %v", r, err)
		}
	}
	if n, err := m.Set(Outbound, want); err != nil || n != 0 {
		t.Fatalf("Set with bgp routes present: %d changes, %v; want 0, nil", n, err)
	}
	if got, _ := m.Current(Outbound); got.String() != want.String() {
		t.Fatalf("Current reports the bgp routes:\n%s\nwant:\n%s", got, want)
	}
	if n := count(ProtoBGP); n != 3 {
		t.Fatalf("%d bgp routes after Set, want 3", n)
	}
	if _, err := m.Clear(Outbound); err != nil {
		t.Fatal(err)
	}
	if n := count(ProtoBGP); n != 3 {
		t.Fatalf("%d bgp routes after Clear, want 3", n)
	}
	if got, _ := m.Current(Outbound); len(got.Routes) != 0 {
		t.Fatalf("after Clear:\n%s", got)
	}

	// The same routes from another protocol are the manager's to remove
	// (the default route is left out: it would collide with the bgp one).
	for _, r := range mk(unix.RTPROT_STATIC)[1:] {
		r.Priority = 30
		if err := h.RouteAdd(r); err != nil {
			t.Fatalf("add %v: %v", r, err)
		}
	}
	if n, err := m.Set(Outbound, want); err != nil || n != 2+len(want.Rules)+len(want.Routes) {
		t.Fatalf("Set with static routes present: %d changes, %v; want %d", n, err, 2+len(want.Rules)+len(want.Routes))
	}
	if n := count(unix.RTPROT_STATIC); n != 0 {
		t.Fatalf("%d static routes left in the link's table", n)
	}
	if n := count(ProtoBGP); n != 3 {
		t.Fatalf("%d bgp routes after the second Set, want 3", n)
	}
}
