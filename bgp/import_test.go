package bgp

import (
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	mhroute "github.com/multihome/multihome/route"
)

func imps(s ...string) []imported {
	var out []imported
	for _, x := range s {
		dst, nh, _ := strings.Cut(x, " via ")
		out = append(out, imported{dst: netip.MustParsePrefix(dst), nh: netip.MustParseAddr(nh)})
	}
	return out
}

func dsts(r []imported) string {
	var s []string
	for _, x := range r {
		s = append(s, x.dst.String())
	}
	return strings.Join(s, " ")
}

// TestFilterImport is the table of import filters: import_prefixes is a
// prefix list, exact unless an entry says le/ge/orlonger.
func TestFilterImport(t *testing.T) {
	recv := imps("0.0.0.0/0 via 198.51.100.1", "192.0.2.128/25 via 198.51.100.1", "192.0.2.192/26 via 198.51.100.1",
		"203.0.113.0/24 via 198.51.100.1", "203.0.113.0/25 via 198.51.100.1", "203.0.113.64/26 via 198.51.100.1",
		"203.0.113.128/28 via 198.51.100.1", "203.0.112.0/23 via 198.51.100.1", "198.51.100.0/24 via 198.51.100.1")
	own := []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}
	full := func(entries ...string) config.BGPNeighbor {
		n := config.BGPNeighbor{Import: config.BGPImportFull}
		for _, e := range entries {
			var f config.PrefixFilter
			if err := f.UnmarshalText([]byte(e)); err != nil {
				t.Fatal(err)
			}
			n.ImportPrefixes = append(n.ImportPrefixes, f)
		}
		return n
	}
	for _, tc := range []struct {
		n    config.BGPNeighbor
		want string
	}{
		{config.BGPNeighbor{Import: config.BGPImportNone}, ""},
		{config.BGPNeighbor{Import: config.BGPImportDefault}, "0.0.0.0/0"},
		// Our own prefix and anything inside it are never taken.
		{full(), "0.0.0.0/0 203.0.113.0/24 203.0.113.0/25 203.0.113.64/26 203.0.113.128/28 203.0.112.0/23 198.51.100.0/24"},
		// The example: exactly the default and the /24.
		{full("0.0.0.0/0", "203.0.113.0/24"), "0.0.0.0/0 203.0.113.0/24"},
		{full("0.0.0.0/0"), "0.0.0.0/0"},
		{full("203.0.113.0/24 le 26"), "203.0.113.0/24 203.0.113.0/25 203.0.113.64/26"},
		{full("203.0.113.0/24 ge 25"), "203.0.113.0/25 203.0.113.64/26 203.0.113.128/28"},
		{full("203.0.113.0/24 ge 26 le 28"), "203.0.113.64/26 203.0.113.128/28"},
		{full("203.0.113.0/24 orlonger"), "203.0.113.0/24 203.0.113.0/25 203.0.113.64/26 203.0.113.128/28"},
		// orlonger of the default: everything, as no filter.
		{full("0.0.0.0/0 orlonger"), "0.0.0.0/0 203.0.113.0/24 203.0.113.0/25 203.0.113.64/26 203.0.113.128/28 203.0.112.0/23 198.51.100.0/24"},
		// A /22 entry does not take the /23 inside it unless it says so.
		{full("203.0.112.0/22"), ""},
		{full("203.0.112.0/22 le 23"), "203.0.112.0/23"},
		// Our own prefix stays out even when an entry matches it.
		{full("192.0.2.0/24 orlonger"), ""},
		{full("2001:db8::/32 orlonger"), ""},
	} {
		if got := dsts(filterImport(tc.n, own, recv)); got != tc.want {
			t.Errorf("%s %v: got %q, want %q", tc.n.Import, tc.n.ImportPrefixes, got, tc.want)
		}
	}
}

func TestLimitImport(t *testing.T) {
	want := imps("0.0.0.0/0 via 198.51.100.1", "203.0.113.0/26 via 198.51.100.1", "203.0.113.64/26 via 198.51.100.1", "203.0.113.128/26 via 198.51.100.1")
	if got, over := limitImport(0, nil, want); over || len(got) != 4 {
		t.Errorf("no limit: %v %v", dsts(got), over)
	}
	if got, over := limitImport(4, nil, want); over || len(got) != 4 {
		t.Errorf("at the limit: %v %v", dsts(got), over)
	}
	got, over := limitImport(2, nil, want)
	if !over || dsts(got) != "0.0.0.0/0 203.0.113.0/26" {
		t.Errorf("limit 2 from nothing: %q %v", dsts(got), over)
	}
	// What is installed stays: a new lower prefix does not push one out.
	got, over = limitImport(2, imps("203.0.113.64/26 via 198.51.100.1", "203.0.113.128/26 via 198.51.100.1"), want)
	if !over || dsts(got) != "203.0.113.64/26 203.0.113.128/26" {
		t.Errorf("limit 2 keeping the installed ones: %q %v", dsts(got), over)
	}
	// One installed route withdrawn: the free slot goes to the lowest new.
	got, _ = limitImport(2, imps("203.0.113.64/26 via 198.51.100.1", "198.51.100.0/24 via 198.51.100.1"), want)
	if dsts(got) != "0.0.0.0/0 203.0.113.64/26" {
		t.Errorf("limit 2 after a withdrawal: %q", dsts(got))
	}
}

func TestHasASAndNextHop(t *testing.T) {
	p, err := localPath(netip.MustParsePrefix("2001:db8:ff00::/40"))
	if err != nil {
		t.Fatal(err)
	}
	if nh := nextHop(p); nh.IsValid() {
		t.Errorf("next hop of a path with next hop :: = %v, want none", nh)
	}
	mp, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: p.Nlri}}, netip.MustParseAddr("2001:db8:1::1"))
	p.Attrs = []bgp.PathAttributeInterface{mp, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{64501, 64500})})}
	if nh := nextHop(p); nh != netip.MustParseAddr("2001:db8:1::1") {
		t.Errorf("next hop %v", nh)
	}
	if !hasAS(p, 64500) || hasAS(p, 64502) {
		t.Errorf("hasAS wrong")
	}
	if pr, ok := nlriPrefix(p.Nlri); !ok || pr.String() != "2001:db8:ff00::/40" {
		t.Errorf("nlri prefix %v %v", pr, ok)
	}
}

// evSource is a fakeSource that records the link evidence it is given.
type evSource struct {
	fakeSource
	mu  sync.Mutex
	got []string
}

func (e *evSource) Evidence(link string, up bool, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, link+" "+map[bool]string{true: "up", false: "down"}[up]+": "+reason)
}

func (e *evSource) evidence() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

// holdSource is a source that takes holds, as the monitor does.
type holdSource struct {
	evSource
	holds map[string]string // "link|source" → reason
}

func (h *holdSource) Hold(link, source, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds == nil {
		h.holds = map[string]string{}
	}
	h.holds[link+"|"+source] = reason
}

func (h *holdSource) Release(link, source string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.holds, link+"|"+source)
}

func (h *holdSource) held() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.holds)
}

// TestRequireDefaultHold: with a source that takes holds, a missing
// default holds the link down (no Evidence), the default's return, the
// session's end and stop release it.
func TestRequireDefaultHold(t *testing.T) {
	src := &holdSource{}
	s, st := importSpeaker(t, src)
	n := st.cfg.Neighbors[1]
	key := "wan1|bgp neighbor 198.51.100.1 require_default"
	st.imp.hasDef[n.Address] = false
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	if got := src.held(); len(got) != 1 || got[key] != "bgp neighbor 198.51.100.1 sends no default route (require_default)" {
		t.Fatalf("holds %v", got)
	}
	if ev := src.evidence(); len(ev) != 0 {
		t.Fatalf("evidence sent to a holder: %v", ev)
	}
	st.imp.hasDef[n.Address] = true
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	if got := src.held(); len(got) != 0 {
		t.Fatalf("hold kept with the default back: %v", got)
	}
	st.imp.hasDef[n.Address] = false
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	s.releaseDefault(st, n.Address) // what a session going down does
	if got := src.held(); len(got) != 0 {
		t.Fatalf("hold kept after the session went down: %v", got)
	}
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	s.clearImports(st)
	if got := src.held(); len(got) != 0 {
		t.Fatalf("hold kept after stop: %v", got)
	}
}

const importYAML = `
links:
  - {name: wan1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: wan2, interface: wan2, gateway4: 198.51.100.9, address4: 198.51.100.10}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: wan1, address: 198.51.100.3, asn: 64503, import: full}
    - {link: wan1, address: 198.51.100.1, asn: 64501, import: full, require_default: true}
    - {link: wan2, address: 198.51.100.9, asn: 64502, import: default}
`

// importSpeaker is a speaker for importYAML whose neighbours are all
// established (no GoBGP running) and a run state for it.
func importSpeaker(t *testing.T, src monitor.Source) (*Speaker, *runState) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(importYAML))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, src, discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cfg.BGP.Neighbors {
		s.peers[n.Address] = &peerInfo{link: n.Link, asn: n.ASN, state: bgp.BGP_FSM_ESTABLISHED, since: time.Now().Add(-time.Minute)}
	}
	return s, &runState{cfg: cfg.BGP, imp: newImportState(linkTables(cfg))}
}

func TestRequireDefault(t *testing.T) {
	src := &evSource{}
	s, st := importSpeaker(t, src)
	n := st.cfg.Neighbors[1]
	// The default is there: nothing.
	st.imp.hasDef[n.Address] = true
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	s.onLinkEvent(st, "wan1")
	if got := src.evidence(); len(got) != 0 {
		t.Fatalf("evidence with the default present: %v", got)
	}
	// Missing past the grace: down, and again when the link comes back.
	st.imp.hasDef[n.Address] = false
	s.requireDefault(st, n, time.Now().Add(-time.Minute))
	s.onLinkEvent(st, "wan1")
	s.onLinkEvent(st, "wan2") // no require_default there
	want := "wan1 down: bgp neighbor 198.51.100.1 sends no default route (require_default)"
	if got := src.evidence(); len(got) != 2 || got[0] != want || got[1] != want {
		t.Fatalf("evidence %q, want twice %q", got, want)
	}
	// Within the grace after the session came up: nothing yet, a re-check
	// marks the neighbour when the grace ends.
	old := defaultGrace
	defaultGrace = 200 * time.Millisecond
	defer func() { defaultGrace = old }()
	s.requireDefault(st, n, time.Now())
	if got := src.evidence(); len(got) != 2 {
		t.Fatalf("evidence within the grace: %v", got)
	}
	select {
	case <-s.impKick:
		t.Fatal("re-check before the grace ended")
	case <-time.After(100 * time.Millisecond):
	}
	select {
	case <-s.impKick:
	case <-time.After(2 * time.Second):
		t.Fatal("no re-check after the grace")
	}
	s.impMu.Lock()
	dirty := s.impDirty[n.Address]
	s.impMu.Unlock()
	if !dirty {
		t.Error("the re-check did not mark the neighbour")
	}
}

// TestInstallImportsKernel installs imported routes in a throwaway
// namespace: union per link with the lowest neighbour address winning,
// idempotent, stale and leftover bgp routes removed, other routes left,
// the counts in Status and the metric, nothing left after clearImports.
func TestInstallImportsKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique("mhbi", "")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	h, err := netns.Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	for _, l := range []struct{ name, addr string }{{"wan1", "198.51.100.2/29"}, {"wan2", "198.51.100.10/29"}} {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: l.name}, PeerName: l.name + "p"}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(l.addr)
		if err := h.AddrAdd(v, a); err != nil {
			t.Fatal(err)
		}
		p, _ := h.LinkByName(l.name + "p")
		h.LinkSetUp(p)
		if err := h.LinkSetUp(v); err != nil {
			t.Fatal(err)
		}
	}
	s, st := importSpeaker(t, &fakeSource{})
	st.imp.routes = mhroute.NewManager(h)
	t1, t2 := mhroute.DefaultScheme.Table(0), mhroute.DefaultScheme.Table(1)

	// A static default (package route's) and a leftover bgp route.
	wan1, _ := h.LinkByName("wan1")
	for _, r := range []*netlink.Route{
		{Table: t1, LinkIndex: wan1.Attrs().Index, Dst: mustNet("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1").AsSlice()},
		{Table: t1, LinkIndex: wan1.Attrs().Index, Dst: mustNet("198.51.100.128/25"), Gw: netip.MustParseAddr("198.51.100.1").AsSlice(), Protocol: mhroute.ProtoBGP, Priority: importMetric},
	} {
		if err := h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}

	st.imp.got = map[netip.Addr][]imported{
		netip.MustParseAddr("198.51.100.3"): imps("0.0.0.0/0 via 198.51.100.3", "203.0.113.128/25 via 198.51.100.3"),
		netip.MustParseAddr("198.51.100.1"): imps("0.0.0.0/0 via 198.51.100.1", "203.0.113.0/25 via 198.51.100.1"),
		netip.MustParseAddr("198.51.100.9"): imps("0.0.0.0/0 via 198.51.100.9"),
	}
	s.installImports(st)
	want1 := []string{
		"0.0.0.0/0 via 198.51.100.1 dev wan1 metric 2048", "203.0.113.0/25 via 198.51.100.1 dev wan1 metric 2048",
		"203.0.113.128/25 via 198.51.100.3 dev wan1 metric 2048",
	}
	if got := bgpRoutes(t, h, t1); !slices.Equal(got, sortedCopy(want1)) {
		t.Fatalf("table %d: %v\nwant %v", t1, got, want1)
	}
	if got := bgpRoutes(t, h, t2); !slices.Equal(got, []string{"0.0.0.0/0 via 198.51.100.9 dev wan2 metric 2048"}) {
		t.Fatalf("table %d: %v", t2, got)
	}
	counts := map[string]int{}
	for _, n := range s.Status() {
		counts[n.Neighbor.String()] = n.Imported
		if n.Import == "" || n.Import == "none" {
			t.Errorf("status import %q for %s", n.Import, n.Neighbor)
		}
	}
	if counts["198.51.100.1"] != 2 || counts["198.51.100.3"] != 1 || counts["198.51.100.9"] != 1 {
		t.Errorf("imported counts %v", counts)
	}
	const metric = `# HELP multihome_bgp_imported_routes Routes from the neighbour installed in its link's routing table (import: default or full).
# TYPE multihome_bgp_imported_routes gauge
multihome_bgp_imported_routes{link="wan1",neighbor="198.51.100.1"} 2
multihome_bgp_imported_routes{link="wan1",neighbor="198.51.100.3"} 1
multihome_bgp_imported_routes{link="wan2",neighbor="198.51.100.9"} 1
`
	if err := testutil.CollectAndCompare(s.Collector(), strings.NewReader(metric), "multihome_bgp_imported_routes"); err != nil {
		t.Error(err)
	}
	if probs, err := testutil.CollectAndLint(s.Collector()); err != nil || len(probs) > 0 {
		t.Errorf("promlint: %v %v", probs, err)
	}
	// Idempotent.
	if n := st.imp.routes.Repair(discard()); n != 0 {
		t.Errorf("re-synced: %d changes", n)
	}

	// 198.51.100.1 goes: its default gives way to 198.51.100.3's.
	delete(st.imp.got, netip.MustParseAddr("198.51.100.1"))
	s.installImports(st)
	want1 = []string{"0.0.0.0/0 via 198.51.100.3 dev wan1 metric 2048", "203.0.113.128/25 via 198.51.100.3 dev wan1 metric 2048"}
	if got := bgpRoutes(t, h, t1); !slices.Equal(got, sortedCopy(want1)) {
		t.Fatalf("table %d after a neighbour went: %v\nwant %v", t1, got, want1)
	}

	// A reload that sets import: none everywhere: the next sync (every
	// neighbour marked, as reload does) empties the tables.
	b := *st.cfg
	b.Neighbors = slices.Clone(b.Neighbors)
	for i := range b.Neighbors {
		b.Neighbors[i].Import, b.Neighbors[i].RequireDefault = config.BGPImportNone, false
	}
	old := st.cfg
	st.cfg = &b
	s.markAllImports(st)
	s.syncImports(st)
	for _, tbl := range []int{t1, t2} {
		if got := bgpRoutes(t, h, tbl); len(got) != 0 {
			t.Errorf("table %d after import: none: %v", tbl, got)
		}
	}
	for _, n := range s.Status() {
		if n.Imported != 0 {
			t.Errorf("%s still counts %d imported routes", n.Neighbor, n.Imported)
		}
	}

	// Back, then a stop removes everything.
	st.cfg = old
	st.imp.got = map[netip.Addr][]imported{netip.MustParseAddr("198.51.100.9"): imps("0.0.0.0/0 via 198.51.100.9")}
	s.installImports(st)
	if got := bgpRoutes(t, h, t2); len(got) != 1 {
		t.Fatalf("table %d: %v", t2, got)
	}
	s.clearImports(st)
	for _, tbl := range []int{t1, t2} {
		if got := bgpRoutes(t, h, tbl); len(got) != 0 {
			t.Errorf("table %d after clearImports: %v", tbl, got)
		}
	}
	rts, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: t1}, netlink.RT_FILTER_TABLE)
	if len(rts) != 1 || rts[0].Protocol == mhroute.ProtoBGP || rts[0].Priority != 0 {
		t.Errorf("table %d: %v, want only the static default", t1, rts)
	}
}

func mustNet(s string) *net.IPNet {
	n, err := netlink.ParseIPNet(s)
	if err != nil {
		panic(err)
	}
	return n
}
