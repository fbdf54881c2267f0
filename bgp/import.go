package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	mhroute "github.com/multihome/multihome/route"
)

// Route import (docs/bgp.md, "Importing routes"): the paths a neighbour
// sends are read from its Adj-RIB-In (GoBGP keeps every received path
// there, before the import policy, which still rejects everything: no
// received path ever reaches the global RIB, so none can be exported),
// filtered by the neighbour's import settings and installed into its
// link's routing table with protocol bgp and metric importMetric, next to
// the static default route that package route keeps there at metric 0.
const (
	// importMetric is the metric of imported routes.
	importMetric = 2048
	// importQuiet is how long the speaker waits after a received update
	// (or a session state change) for more before it syncs the kernel;
	// importMaxDelay bounds that wait under a continuous stream.
	importQuiet    = 50 * time.Millisecond
	importMaxDelay = time.Second
)

// defaultGrace is how long after a session comes up a missing default
// route is tolerated with require_default: the neighbour's first updates
// may take a moment to arrive.
var defaultGrace = 3 * time.Second

// linkTable is where one link's imported routes go: its table and
// interface, and the lease of the links' tables the BGP owner has in the
// route manager (the same for every link).
type linkTable struct {
	table int
	iface string
	lease mhroute.Lease
}

// linkTables maps every link of cfg to its routing table and interface.
func linkTables(cfg *config.Config) map[string]linkTable {
	s := mhroute.SchemeFor(cfg)
	out := map[string]linkTable{}
	for i, l := range cfg.Links {
		out[l.Name] = linkTable{table: s.Table(i), iface: l.Interface, lease: s.BGPLease()}
	}
	return out
}

// imported is one route taken from a neighbour.
type imported struct {
	dst netip.Prefix
	nh  netip.Addr
}

// importState is the import side of the run state, owned by Run.
type importState struct {
	routes  *mhroute.Manager // writes the routes (the BGP owner's lease); nil until the first install
	links   map[string]linkTable
	got     map[netip.Addr][]imported // per neighbour: routes taken (filtered, limited), sorted
	limited map[netip.Addr]bool       // max_prefixes reached
	hasDef  map[netip.Addr]bool       // the neighbour sends a default route
	defLost map[netip.Addr]bool       // it withdrew it (logged) and has not sent it again
	tables  map[int]bool              // every table of an importing neighbour's link in this run
	timer   *time.Timer
	first   time.Time // first unsynced change
	recheck map[netip.Addr]*time.Timer
	held    map[netip.Addr]string // require_default holds set, per neighbour: the link held
}

// Holder is what a monitor.Source may also implement to keep a link down
// until released ((*monitor.Monitor).Hold and Release). A neighbour with
// require_default that sends no default route holds its link down; the
// probes cannot bring it back until the default returns.
type Holder interface {
	Hold(link, source, reason string)
	Release(link, source string)
}

// defaultSource names a require_default hold.
func defaultSource(a netip.Addr) string { return "bgp neighbor " + a.String() + " require_default" }

// releaseDefault ends neighbour a's require_default hold, if any.
func (s *Speaker) releaseDefault(st *runState, a netip.Addr) {
	link, ok := st.imp.held[a]
	if !ok {
		return
	}
	delete(st.imp.held, a)
	if h, ok := s.src.(Holder); ok {
		h.Release(link, defaultSource(a))
	}
}

func newImportState(links map[string]linkTable) *importState {
	t := time.NewTimer(time.Hour)
	t.Stop()
	im := &importState{
		links: links, got: map[netip.Addr][]imported{}, limited: map[netip.Addr]bool{},
		hasDef: map[netip.Addr]bool{}, defLost: map[netip.Addr]bool{}, tables: map[int]bool{}, timer: t, recheck: map[netip.Addr]*time.Timer{}, held: map[netip.Addr]string{},
	}
	return im
}

// markImport notes that neighbour a's routes or session changed; Run
// syncs after the debounce. Safe from any goroutine.
func (s *Speaker) markImport(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	s.impMu.Lock()
	s.impDirty[a] = true
	s.impMu.Unlock()
	select {
	case s.impKick <- struct{}{}:
	default:
	}
}

// markAllImports marks every neighbour of cfg (and every neighbour routes
// were taken from) as changed.
func (s *Speaker) markAllImports(st *runState) {
	for _, n := range st.cfg.Neighbors {
		s.markImport(n.Address)
	}
	for a := range st.imp.got {
		s.markImport(a)
	}
}

// importKicked arms the debounce timer after a change.
func (s *Speaker) importKicked(st *runState) {
	im := st.imp
	now := time.Now()
	if im.first.IsZero() {
		im.first = now
	}
	d := min(importQuiet, max(im.first.Add(importMaxDelay).Sub(now), 0))
	im.timer.Reset(d)
}

// onPathUpdate is GoBGP's callback for received updates (before policy).
func (s *Speaker) onPathUpdate(paths []*apiutil.Path, _ time.Time) {
	seen := netip.Addr{}
	for _, p := range paths {
		if p.PeerAddress.IsValid() && p.PeerAddress != seen {
			seen = p.PeerAddress
			s.markImport(p.PeerAddress)
		}
	}
}

// syncImports re-reads the changed neighbours' Adj-RIB-In, applies the
// import settings, reports missing default routes (require_default) and
// makes every link table's bgp routes match.
func (s *Speaker) syncImports(st *runState) {
	im := st.imp
	im.first = time.Time{}
	s.impMu.Lock()
	dirty := s.impDirty
	s.impDirty = map[netip.Addr]bool{}
	s.impMu.Unlock()
	for a := range dirty {
		i := slices.IndexFunc(st.cfg.Neighbors, func(n config.BGPNeighbor) bool { return n.Address == a })
		if i < 0 {
			s.releaseDefault(st, a)
			im.forget(a)
			continue
		}
		n := st.cfg.Neighbors[i]
		s.mu.Lock()
		var up bool
		var since time.Time
		if p := s.peers[a]; p != nil {
			up, since = p.state == bgp.BGP_FSM_ESTABLISHED, p.since
		}
		s.mu.Unlock()
		if !n.Imports() || !up {
			s.releaseDefault(st, a)
			im.forget(a)
			continue
		}
		recv, err := s.adjIn(st, a)
		if err != nil {
			s.log.Error("bgp import: read received routes", "neighbor", a, "err", err)
			continue
		}
		def := slices.ContainsFunc(recv, func(r imported) bool { return r.dst.Bits() == 0 })
		if im.hasDef[a] && !def {
			s.log.Warn("bgp neighbour withdrew its default route", "neighbor", a, "link", n.Link)
			im.defLost[a] = true
		}
		if def && im.defLost[a] {
			s.log.Info("bgp neighbour sends a default route again", "neighbor", a, "link", n.Link)
			delete(im.defLost, a)
		}
		im.hasDef[a] = def
		s.takeRoutes(st, n, recv)
		s.requireDefault(st, n, since)
	}
	s.installImports(st)
}

// forget drops what is known of neighbour a's routes (session down,
// import off, neighbour removed).
func (im *importState) forget(a netip.Addr) {
	delete(im.got, a)
	delete(im.limited, a)
	delete(im.hasDef, a)
	delete(im.defLost, a)
	if t := im.recheck[a]; t != nil {
		t.Stop()
		delete(im.recheck, a)
	}
}

// adjIn returns the routes neighbour a sent (its Adj-RIB-In, of its own
// family), sorted by prefix, without those whose AS path holds our own
// AS (RFC 4271 9.1.2 loop detection: our own prefixes sent back).
func (s *Speaker) adjIn(st *runState, a netip.Addr) ([]imported, error) {
	fam := bgp.RF_IPv4_UC
	if !a.Is4() {
		fam = bgp.RF_IPv6_UC
	}
	var out []imported
	err := st.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: a.String(), Family: fam},
		func(nlri bgp.NLRI, paths []*apiutil.Path) {
			dst, ok := nlriPrefix(nlri)
			if !ok {
				return
			}
			for _, p := range paths {
				if p.Withdrawal || hasAS(p, st.cfg.ASN) {
					continue
				}
				if nh := nextHop(p); nh.IsValid() {
					out = append(out, imported{dst: dst, nh: nh})
					return
				}
			}
		})
	slices.SortFunc(out, func(x, y imported) int { return comparePrefix(x.dst, y.dst) })
	return out, err
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// hasAS reports whether the path's AS path contains asn.
func hasAS(p *apiutil.Path, asn uint32) bool {
	for _, a := range p.Attrs {
		if ap, ok := a.(*bgp.PathAttributeAsPath); ok {
			for _, seg := range ap.Value {
				if slices.Contains(seg.GetAS(), asn) {
					return true
				}
			}
		}
	}
	return false
}

// nlriPrefix is the unicast prefix of nlri.
func nlriPrefix(nlri bgp.NLRI) (netip.Prefix, bool) {
	if p, ok := nlri.(*bgp.IPAddrPrefix); ok && p.Prefix.IsValid() {
		return p.Prefix.Masked(), true
	}
	p, err := netip.ParsePrefix(nlri.String())
	return p.Masked(), err == nil
}

// nextHop is the path's next hop: NEXT_HOP for IPv4, MP_REACH_NLRI's
// global next hop (or the link-local one when there is no global) for
// IPv6.
func nextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			if a.Value.IsValid() && !a.Value.IsUnspecified() {
				return a.Value.Unmap()
			}
		case *bgp.PathAttributeMpReachNLRI:
			if a.Nexthop.IsValid() && !a.Nexthop.IsUnspecified() {
				return a.Nexthop.Unmap()
			}
			if a.LinkLocalNexthop.IsValid() && !a.LinkLocalNexthop.IsUnspecified() {
				return a.LinkLocalNexthop
			}
		}
	}
	return netip.Addr{}
}

// filterImport keeps the routes n's import settings take: only the
// default route with import: default; with import: full every route, or
// those an entry of the import_prefixes prefix list matches (exact
// unless the entry says le/ge/orlonger). Routes to our own prefixes (own,
// or more specific ones) are never taken.
func filterImport(n config.BGPNeighbor, own []netip.Prefix, recv []imported) []imported {
	var out []imported
	for _, r := range recv {
		switch {
		case slices.ContainsFunc(own, func(o netip.Prefix) bool { return within(r.dst, o) }):
		case n.Import == config.BGPImportDefault && r.dst.Bits() != 0:
		case n.Import == config.BGPImportFull && len(n.ImportPrefixes) > 0 &&
			!slices.ContainsFunc(n.ImportPrefixes, func(f config.PrefixFilter) bool { return f.Matches(r.dst) }):
		case !n.Imports():
		default:
			out = append(out, r)
		}
	}
	return out
}

// within reports whether p is equal to or more specific than q.
func within(p, q netip.Prefix) bool { return q.Bits() <= p.Bits() && q.Contains(p.Addr()) }

// limitImport applies max: the routes already taken (prev) stay, then
// new ones in prefix order until max; it reports whether any was left
// out.
func limitImport(max int, prev, want []imported) ([]imported, bool) {
	if max <= 0 || len(want) <= max {
		return want, false
	}
	had := map[netip.Prefix]bool{}
	for _, r := range prev {
		had[r.dst] = true
	}
	var out []imported
	for _, r := range want {
		if had[r.dst] && len(out) < max {
			out = append(out, r)
		}
	}
	for _, r := range want {
		if !had[r.dst] && len(out) < max {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y imported) int { return comparePrefix(x.dst, y.dst) })
	return out, true
}

// takeRoutes records what is imported from n out of recv.
func (s *Speaker) takeRoutes(st *runState, n config.BGPNeighbor, recv []imported) {
	im := st.imp
	want := filterImport(n, st.cfg.Prefixes, recv)
	got, over := limitImport(n.MaxPrefixes, im.got[n.Address], want)
	if over && !im.limited[n.Address] {
		s.log.Error("bgp import: neighbour sends more routes than max_prefixes: no more are installed", "neighbor", n.Address,
			"link", n.Link, "max_prefixes", n.MaxPrefixes, "received", len(want))
	}
	if !over && im.limited[n.Address] {
		s.log.Info("bgp import: neighbour back under max_prefixes", "neighbor", n.Address, "link", n.Link, "max_prefixes", n.MaxPrefixes, "received", len(want))
	}
	im.limited[n.Address] = over
	im.got[n.Address] = got
}

// requireDefault holds n's link down (a Holder source; else reports it
// down as Evidence) while its session is established (for longer than
// defaultGrace) and it sends no default route, and releases the hold once
// the default is back, the session is down or require_default is off.
// Within the grace it re-checks when the grace ends.
func (s *Speaker) requireDefault(st *runState, n config.BGPNeighbor, since time.Time) {
	im := st.imp
	if !n.RequireDefault || im.hasDef[n.Address] {
		s.releaseDefault(st, n.Address)
		return
	}
	if wait := time.Until(since.Add(defaultGrace)); wait > 0 {
		if t := im.recheck[n.Address]; t != nil {
			t.Stop()
		}
		a := n.Address
		im.recheck[a] = time.AfterFunc(wait+10*time.Millisecond, func() { s.markImport(a) })
		return
	}
	reason := fmt.Sprintf("bgp neighbor %s sends no default route (require_default)", n.Address)
	if h, ok := s.src.(Holder); ok {
		if link, held := im.held[n.Address]; held && link != n.Link {
			s.releaseDefault(st, n.Address)
		}
		h.Hold(n.Link, defaultSource(n.Address), reason)
		im.held[n.Address] = n.Link
		return
	}
	if ev, ok := s.src.(Evidence); ok {
		ev.Evidence(n.Link, false, reason)
	}
}

// onLinkEvent: a link the monitor brings back (its probes succeed)
// while one of its require_default neighbours, established past the
// grace, still sends no default route (as of the last sync) is reported
// down again at once.
func (s *Speaker) onLinkEvent(st *runState, link string) {
	for _, n := range st.cfg.Neighbors {
		if n.Link != link || !n.RequireDefault {
			continue
		}
		s.mu.Lock()
		var up bool
		var since time.Time
		if p := s.peers[n.Address]; p != nil {
			up, since = p.state == bgp.BGP_FSM_ESTABLISHED, p.since
		}
		s.mu.Unlock()
		if def, seen := st.imp.hasDef[n.Address]; up && seen && !def {
			s.requireDefault(st, n, since)
		}
	}
}

// desiredImports is every link table's bgp routes: the union of what
// is taken from the neighbours on its link; when two send the same
// prefix, the lowest neighbour address wins. owner maps each route to
// the neighbour it comes from.
func desiredImports(cfg *config.BGP, links map[string]linkTable, got map[netip.Addr][]imported) map[int]map[netip.Prefix]owned {
	out := map[int]map[netip.Prefix]owned{}
	nbrs := slices.Clone(cfg.Neighbors)
	slices.SortFunc(nbrs, func(a, b config.BGPNeighbor) int { return a.Address.Compare(b.Address) })
	for _, n := range nbrs {
		lt, ok := links[n.Link]
		if !ok {
			continue
		}
		for _, r := range got[n.Address] {
			m := out[lt.table]
			if m == nil {
				m = map[netip.Prefix]owned{}
				out[lt.table] = m
			}
			if _, dup := m[r.dst]; !dup {
				m[r.dst] = owned{imported: r, iface: lt.iface, from: n.Address}
			}
		}
	}
	return out
}

// owned is a desired kernel route and the neighbour it comes from.
type owned struct {
	imported
	iface string
	from  netip.Addr
}

// installImports makes the kernel's bgp routes in every table ever used
// equal to the desired ones, and publishes the counts.
func (s *Speaker) installImports(st *runState) {
	im := st.imp
	want := desiredImports(st.cfg, im.links, im.got)
	// Only the tables of links with an importing neighbour are touched
	// (and, once touched, kept in the set so that they are emptied when
	// the import goes): without import the kernel is never touched.
	for _, n := range st.cfg.Neighbors {
		if lt, ok := im.links[n.Link]; ok && n.Imports() {
			im.tables[lt.table] = true
		}
	}
	count := map[netip.Addr]int{}
	if len(im.tables) > 0 {
		var err error
		if count, err = s.writeImports(im, want); err != nil {
			s.log.Error("bgp import: install routes", "err", err)
		}
	}
	s.mu.Lock()
	for a, p := range s.peers {
		p.imported = count[a]
		p.importLimited = im.limited[a]
	}
	s.mu.Unlock()
}

// clearImports removes every imported route (on stop).
func (s *Speaker) clearImports(st *runState) {
	im := st.imp
	for a := range im.held {
		s.releaseDefault(st, a)
	}
	for a, t := range im.recheck {
		t.Stop()
		delete(im.recheck, a)
	}
	if len(im.tables) == 0 {
		return
	}
	if im.routes == nil {
		return // nothing was ever written
	}
	if err := im.routes.Release(mhroute.BGP); err != nil {
		s.log.Error("bgp import: remove routes", "err", err)
	}
}

// routeManager is the route manager (an alias, for the Speaker field).
type routeManager = mhroute.Manager

// UseRoutes makes the speaker write its imported routes through m, the
// route manager the daemon shares between all owners. Call it before Run.
func (s *Speaker) UseRoutes(m *mhroute.Manager) error {
	s.routes = m
	return nil
}

// writeImports makes the kernel's bgp routes in the links' tables equal to
// want through the route manager (the BGP owner's lease): missing or
// different ones are replaced, others deleted. It returns, per neighbour,
// how many of its routes are in the kernel afterwards.
func (s *Speaker) writeImports(im *importState, want map[int]map[netip.Prefix]owned) (map[netip.Addr]int, error) {
	if im.routes == nil {
		im.routes = s.routes
		if im.routes == nil {
			im.routes = mhroute.NewManager(nil)
		}
	}
	var lease mhroute.Lease
	for _, lt := range im.links {
		lease = lt.lease
	}
	if err := im.routes.Lease(mhroute.BGP, lease); err != nil {
		return nil, err
	}
	var st mhroute.State
	from := map[mhroute.Route]netip.Addr{}
	for _, t := range slices.Sorted(maps.Keys(want)) {
		for _, dst := range slices.SortedFunc(maps.Keys(want[t]), comparePrefix) {
			w := want[t][dst]
			r := mhroute.Route{Family: 4, Table: t, Dst: dst, Gateway: w.nh, Dev: w.iface, Metric: importMetric}
			if dst.Addr().Is6() {
				r.Family = 6
			}
			st.Routes = append(st.Routes, r)
			from[r] = w.from
		}
	}
	n, err := im.routes.Set(mhroute.BGP, st)
	if n > 0 {
		s.log.Debug("bgp import: routes synced", "changes", n)
	}
	var failed []mhroute.Route
	var se *mhroute.SetError
	if errors.As(err, &se) {
		failed = se.Routes
	}
	count := map[netip.Addr]int{}
	for _, r := range st.Routes {
		if !slices.Contains(failed, r) {
			count[from[r]]++
		}
	}
	return count, err
}

func routeDst(r netlink.Route, fam int) netip.Prefix {
	if r.Dst != nil {
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if fam == netlink.FAMILY_V4 {
			a = a.Unmap()
		}
		return netip.PrefixFrom(a, ones)
	}
	if fam == netlink.FAMILY_V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// importLogAttrs describes the import settings of n, for the start log.
func importLogAttrs(n config.BGPNeighbor) []any {
	return []any{slog.String("neighbor", n.Address.String()), slog.String("link", n.Link), slog.String("import", n.Import),
		slog.Int("max_prefixes", n.MaxPrefixes), slog.Bool("require_default", n.RequireDefault), slog.Any("import_prefixes", n.ImportPrefixes)}
}

// setLinks takes a reloaded config's links; tables no longer used are
// still synced (emptied) since they stay in im.tables.
func (im *importState) setLinks(links map[string]linkTable) {
	im.links = links
}
