package dns

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// zone is one configured zone, compiled from the config. It is immutable:
// a reload compiles new zones.
type zone struct {
	origin string // canonical: lower case, fully qualified
	serve  bool
	soa    mdns.SOA // template; the serial is the view's
	// nodes holds every owner name of the zone, including the empty
	// non-terminals between the apex and deeper names.
	nodes map[string]*node
	cuts  bool // some node is a delegation
	names []*dynName
	// static is every static record but the SOA, in file order, for
	// transfers; staticKey fingerprints them.
	static    []mdns.RR
	staticKey string
	// namesKey lists the steered names and their TTLs, in order: with
	// the current addresses it is what the serial follows.
	namesKey string
	fileSer  uint32

	xfrAllow []netip.Prefix
	xfrKey   string
	notify   []netip.AddrPort
	push     *pushConf
}

// node is one owner name.
type node struct {
	rrs map[uint16][]mdns.RR // static RRsets; owner names canonical
	dyn *dynName
	cut bool // NS records below the apex: a delegation
}

// dynName is a health-steered name.
type dynName struct {
	name      string
	ttl       uint32
	minTTL    uint32
	policy    string
	count     int
	degraded  string
	saturated string
	allDown   string
	// recs[0] are the A records, recs[1] the AAAA ones, in config order.
	recs [2][]addrRec
	// managed[f]: family f is the name's even while it has no address
	// (a host6 record whose prefixes are not known yet): pushes then
	// delete the family's records at the primary rather than leave them.
	managed [2]bool
	links   []string // the links the name depends on
	linkIdx []int    // their indices in the config's links
	// linkMask has bit i for link index i (0 if an index is past 63).
	linkMask uint64
	// recsKey fingerprints recs; recsChanged is when a config change
	// (a reload, a renumbered prefix) last changed them, set by the
	// server before the name is published. It lowers the TTL like a
	// link change does.
	recsKey     string
	recsChanged time.Time
	stats       *nameCounters
	// idx is the name's index in its zone's names (and views' dyn).
	idx int
	// sets remembers the answer sets built for each combination of
	// records (policy all), so a rebuild after a link event allocates
	// none: the set for "every record" and for "all but one link's" are
	// the same slices each time.
	sets [2][]cachedSet
}

type cachedSet struct {
	mask uint64 // which of recs[f]
	set  *answerSet
}

// setOf is the rotating answer set of records c (policy all), which are
// the records of recs[f] that mask has (mask 0: more than 64 records,
// not cached).
func (n *dynName) setOf(f int, c []addrRec, mask uint64) *answerSet {
	if mask != 0 {
		for _, cs := range n.sets[f] {
			if cs.mask == mask {
				return cs.set
			}
		}
	}
	set := new(answerSet)
	*set = fixedSet(addrsOf(c), true)
	if mask != 0 && len(n.sets[f]) < 8 {
		n.sets[f] = append(n.sets[f], cachedSet{mask: mask, set: set})
	}
	return set
}

// allMask is the mask of every record of family f (0 past 64).
func (n *dynName) allMask(f int) uint64 {
	if k := len(n.recs[f]); k > 0 && k <= 64 {
		return ^uint64(0) >> (64 - k)
	}
	return 0
}

// linkIndex is the index of link name in cfg.Links, which is how the
// server finds a link's state on the rebuild path.
func linkIndex(cfg *config.Config, name string) int {
	for i := range cfg.Links {
		if cfg.Links[i].Name == name {
			return i
		}
	}
	return -1
}

// addrRec is one address of a name on one link.
type addrRec struct {
	link     string
	li       int // linkIndex of link
	addr     netip.Addr
	weight   float64
	priority int
	order    int
}

const (
	famA    = 0
	famAAAA = 1
)

func famType(f int) uint16 {
	if f == famA {
		return mdns.TypeA
	}
	return mdns.TypeAAAA
}

// compile builds the zones of cfg. counters gives each name its counters,
// kept across reloads.
func compile(cfg *config.Config, counters func(name, policy string) *nameCounters) ([]*zone, error) {
	d := cfg.DNS
	if d == nil {
		return nil, nil
	}
	var zones []*zone
	seen := map[string]bool{}
	for i := range d.Zones {
		zc := &d.Zones[i]
		z, err := compileZone(cfg, zc, i, counters)
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", zc.Name, err)
		}
		if seen[z.origin] {
			return nil, fmt.Errorf("zone %s given twice", z.origin)
		}
		seen[z.origin] = true
		zones = append(zones, z)
	}
	return zones, nil
}

func orDur(d config.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.D()
}

func secs(d time.Duration) uint32 {
	if d < time.Second {
		return 1
	}
	return uint32(d / time.Second)
}

func compileZone(cfg *config.Config, zc *config.DNSZone, idx int, counters func(name, policy string) *nameCounters) (*zone, error) {
	origin, ok := config.AbsName(zc.Name, ".")
	if !ok || zc.Name == "" {
		return nil, fmt.Errorf("bad zone name %q", zc.Name)
	}
	z := &zone{origin: origin, serve: zc.Mode != config.DNSModePush, nodes: map[string]*node{}}
	rrs, err := zoneRecordsOf(cfg, zc, origin)
	if err != nil {
		return nil, err
	}
	soa, firstNS, err := z.addStatic(rrs)
	if err != nil {
		return nil, err
	}
	z.setSOA(zc.SOA, soa, firstNS)
	if z.serve && len(z.nodes[origin].rrsOf(mdns.TypeNS)) == 0 {
		return nil, fmt.Errorf("no NS records at the apex: add e.g. \"@ NS ns1.%s\" to records", origin)
	}
	if err := z.checkStatic(); err != nil {
		return nil, err
	}
	if err := z.addNames(cfg, zc, counters); err != nil {
		return nil, err
	}
	for _, rr := range rrs {
		if _, ok := rr.(*mdns.SOA); !ok {
			z.static = append(z.static, rr)
		}
	}
	var key strings.Builder
	key.WriteString(z.soa.String())
	for _, rr := range z.static {
		key.WriteString("\n")
		key.WriteString(rr.String())
	}
	z.staticKey = key.String()
	key.Reset()
	for _, n := range z.names {
		fmt.Fprintf(&key, "%s %d\n", n.name, n.ttl)
	}
	z.namesKey = key.String()

	z.xfrAllow = slices.Clone(zc.Transfer.Allow)
	if zc.Transfer.Key != "" {
		z.xfrKey = mdns.CanonicalName(zc.Transfer.Key)
	}
	z.notify = slices.Clone(zc.Transfer.Notify)
	if zc.Push != nil {
		pc, err := compilePush(cfg, zc, origin, idx)
		if err != nil {
			return nil, fmt.Errorf("push: %w", err)
		}
		z.push = pc
	}
	return z, nil
}

// zoneRecordsOf parses a zone's static records: its file, then records.
func zoneRecordsOf(cfg *config.Config, zc *config.DNSZone, origin string) ([]mdns.RR, error) {
	ttl := orDur(zc.TTL, config.DefaultDNSZoneTTL)
	var rrs []mdns.RR
	if zc.File != "" {
		path := cfg.ZoneFile(zc)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		frrs, err := config.ParseZoneText(string(b), origin, path, ttl)
		if err != nil {
			return nil, err
		}
		rrs = append(rrs, frrs...)
	}
	for j, s := range zc.Records {
		r, err := config.ParseZoneText(s, origin, "", ttl)
		if err != nil {
			return nil, fmt.Errorf("records[%d]: %w", j, err)
		}
		rrs = append(rrs, r...)
	}
	return rrs, nil
}

// addStatic adds the static records but the SOA, which it returns with
// the first apex NS target.
func (z *zone) addStatic(rrs []mdns.RR) (soa *mdns.SOA, firstNS string, err error) {
	for _, rr := range rrs {
		h := rr.Header()
		h.Name = mdns.CanonicalName(h.Name)
		if !mdns.IsSubDomain(z.origin, h.Name) {
			return nil, "", fmt.Errorf("%s is outside the zone", h.Name)
		}
		if h.Class != mdns.ClassINET {
			return nil, "", fmt.Errorf("%s: only class IN is served", h.Name)
		}
		switch r := rr.(type) {
		case *mdns.SOA:
			if h.Name != z.origin {
				return nil, "", fmt.Errorf("SOA at %s: only at the apex", h.Name)
			}
			if soa != nil {
				return nil, "", fmt.Errorf("more than one SOA")
			}
			soa = r
			continue
		case *mdns.NS:
			if h.Name == z.origin && firstNS == "" {
				firstNS = r.Ns
			}
		}
		z.add(rr)
	}
	return soa, firstNS, nil
}

// setSOA sets the zone's SOA: the file's, or one made from the soa
// settings (MNAME defaulting to the first apex NS).
func (z *zone) setSOA(s config.DNSSOA, soa *mdns.SOA, firstNS string) {
	origin := z.origin
	if soa == nil {
		soa = &mdns.SOA{
			Hdr:     mdns.RR_Header{Name: origin, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: secs(orDur(s.TTL, config.DefaultDNSZoneTTL))},
			Ns:      firstNS,
			Mbox:    "hostmaster." + origin,
			Refresh: secs(orDur(s.Refresh, config.DefaultDNSSOARefresh)),
			Retry:   secs(orDur(s.Retry, config.DefaultDNSSOARetry)),
			Expire:  secs(orDur(s.Expire, config.DefaultDNSSOAExpire)),
			Minttl:  secs(orDur(s.Minimum, config.DefaultDNSSOAMinimum)),
		}
		if soa.Ns == "" {
			soa.Ns = "ns." + origin
		}
		if s.MName != "" {
			soa.Ns, _ = config.AbsName(s.MName, origin)
		}
		if s.RName != "" {
			soa.Mbox, _ = config.AbsName(s.RName, origin)
		}
	} else {
		z.fileSer = soa.Serial
	}
	z.soa = *soa
	z.soa.Hdr.Name = origin
}

// checkStatic checks the static data hangs together (CNAMEs alone) and
// marks the delegations.
func (z *zone) checkStatic() error {
	for name, n := range z.nodes {
		if cn := n.rrs[mdns.TypeCNAME]; len(cn) > 0 {
			if len(cn) > 1 {
				return fmt.Errorf("%s: more than one CNAME", name)
			}
			if len(n.rrs) > 1 {
				return fmt.Errorf("%s: CNAME next to other records", name)
			}
			if name == z.origin {
				return fmt.Errorf("CNAME at the zone apex")
			}
		}
		if name != z.origin && len(n.rrs[mdns.TypeNS]) > 0 {
			n.cut = true
			z.cuts = true
		}
	}
	return nil
}

// addNames compiles the zone's health-steered names.
func (z *zone) addNames(cfg *config.Config, zc *config.DNSZone, counters func(name, policy string) *nameCounters) error {
	for j := range zc.Names {
		nc := &zc.Names[j]
		dn, err := compileName(cfg, nc, z.origin, counters)
		if err != nil {
			return fmt.Errorf("names[%d]: %w", j, err)
		}
		n := z.node(dn.name)
		if n.dyn != nil {
			return fmt.Errorf("name %s given twice", dn.name)
		}
		for _, t := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeCNAME} {
			if len(n.rrs[t]) > 0 {
				return fmt.Errorf("name %s: also has static %s records", dn.name, mdns.TypeToString[t])
			}
		}
		if z.below(dn.name) {
			return fmt.Errorf("name %s is under a delegation", dn.name)
		}
		n.dyn = dn
		dn.idx = len(z.names)
		z.names = append(z.names, dn)
	}
	return nil
}

// compileName turns a dns.zones[].names entry into its dynamic name.
func compileName(cfg *config.Config, nc *config.DNSName, origin string, counters func(name, policy string) *nameCounters) (*dynName, error) {
	name, ok := config.AbsName(nc.Name, origin)
	if !ok || nc.Name == "" || !mdns.IsSubDomain(origin, name) {
		return nil, fmt.Errorf("bad name %q", nc.Name)
	}
	ttl := orDur(nc.TTL, config.DefaultDNSNameTTL)
	dn := &dynName{
		name:      name,
		ttl:       secs(ttl),
		minTTL:    secs(min(orDur(nc.MinTTL, config.DefaultDNSMinTTL), ttl)),
		policy:    def(nc.Policy, config.DNSPolicyAll),
		count:     max(nc.Count, 1),
		degraded:  def(nc.Degraded, config.DNSDemote),
		saturated: def(nc.Saturated, config.DNSDemote),
		allDown:   def(nc.AllDown, config.DNSAllDownAll),
	}
	if err := dn.checkChoices(); err != nil {
		return nil, err
	}
	if err := dn.addRecords(cfg, nc); err != nil {
		return nil, err
	}
	dn.addHost6(cfg, nc)
	dn.index(cfg)
	dn.stats = counters(name, dn.policy)
	return dn, nil
}

// checkChoices validates the name's policy, demotions and all_down.
func (dn *dynName) checkChoices() error {
	switch dn.policy {
	case config.DNSPolicyAll, config.DNSPolicyWeighted, config.DNSPolicyFailover, config.DNSPolicyFirst:
	default:
		return fmt.Errorf("%s: unknown policy %q", dn.name, dn.policy)
	}
	for _, v := range []string{dn.degraded, dn.saturated} {
		if v != config.DNSKeep && v != config.DNSDemote && v != config.DNSRemove {
			return fmt.Errorf("%s: unknown demotion %q", dn.name, v)
		}
	}
	switch dn.allDown {
	case config.DNSAllDownAll, config.DNSAllDownLastGood, config.DNSAllDownServfail:
	default:
		return fmt.Errorf("%s: unknown all_down %q", dn.name, dn.allDown)
	}
	return nil
}

// addRecords adds the name's records, link by link.
func (dn *dynName) addRecords(cfg *config.Config, nc *config.DNSName) error {
	for i, r := range nc.Records {
		l := cfg.LinkByName(r.Link)
		if l == nil {
			return fmt.Errorf("%s: unknown link %q", dn.name, r.Link)
		}
		w := float64(l.Weight)
		if r.Weight > 0 {
			w = float64(r.Weight)
		}
		ar := addrRec{link: r.Link, li: linkIndex(cfg, r.Link), weight: w, priority: l.Priority, order: i}
		if a := r.A.Resolve(l, 4); a.IsValid() && a.Is4() {
			ar.addr = a
			dn.recs[famA] = append(dn.recs[famA], ar)
		}
		if a := r.AAAA.Resolve(l, 6); a.IsValid() && a.Is6() && !a.Is4In6() {
			ar.addr = a
			dn.recs[famAAAA] = append(dn.recs[famAAAA], ar)
		}
		if r.Host6.IsValid() {
			// The host's address in each of the link's LAN prefixes; a
			// prefix not known yet (learned, not delegated so far) gives
			// none.
			dn.managed[famAAAA] = true
			for _, a := range r.Host6Addrs(cfg.IPv6) {
				ar.addr = a
				dn.recs[famAAAA] = append(dn.recs[famAAAA], ar)
			}
		}
		if !slices.Contains(dn.links, r.Link) {
			dn.links = append(dn.links, r.Link)
		}
	}
	return nil
}

// index fills in the name's link indexes and mask, which families it
// manages, and the key of its records.
func (dn *dynName) index(cfg *config.Config) {
	for _, l := range dn.links {
		li := linkIndex(cfg, l)
		dn.linkIdx = append(dn.linkIdx, li)
		if li >= 0 && li < 64 {
			dn.linkMask |= 1 << li
		} else {
			dn.linkMask = 0
			break
		}
	}
	var key strings.Builder
	for f := range 2 {
		if len(dn.recs[f]) > 0 {
			dn.managed[f] = true
		}
		for _, r := range dn.recs[f] {
			fmt.Fprintf(&key, "%d %s %s\n", f, r.link, r.addr)
		}
	}
	dn.recsKey = key.String()
}

// addHost6 adds a name-level host6: the host on every link with LAN
// prefixes that no record gives IPv6 addresses for.
func (dn *dynName) addHost6(cfg *config.Config, nc *config.DNSName) {
	for _, link := range nc.Host6Links(cfg) {
		l := cfg.LinkByName(link)
		w := float64(l.Weight)
		for _, r := range nc.Records {
			if r.Link == link && r.Weight > 0 {
				w = float64(r.Weight)
				break
			}
		}
		dn.managed[famAAAA] = true
		rec := config.DNSLinkRecord{Link: link, Host6: nc.Host6}
		for _, a := range rec.Host6Addrs(cfg.IPv6) {
			dn.recs[famAAAA] = append(dn.recs[famAAAA], addrRec{link: link, li: linkIndex(cfg, link), addr: a, weight: w, priority: l.Priority, order: len(nc.Records)})
		}
		if !slices.Contains(dn.links, link) {
			dn.links = append(dn.links, link)
		}
	}
}

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// node returns the node for name, creating it and the empty non-terminals
// between it and the apex.
func (z *zone) node(name string) *node {
	n := z.nodes[name]
	if n != nil {
		return n
	}
	n = &node{rrs: map[uint16][]mdns.RR{}}
	z.nodes[name] = n
	if name != z.origin {
		if p := parentName(name); mdns.IsSubDomain(z.origin, p) {
			z.node(p)
		}
	}
	return n
}

// parentName drops the first label of a fully qualified name.
func parentName(name string) string {
	i := 0
	for i < len(name) {
		if name[i] == '\\' {
			i += 2
			continue
		}
		if name[i] == '.' {
			if i+1 >= len(name) {
				return "."
			}
			return name[i+1:]
		}
		i++
	}
	return "."
}

func (z *zone) add(rr mdns.RR) {
	h := rr.Header()
	n := z.node(h.Name)
	set := n.rrs[h.Rrtype]
	for _, o := range set {
		if mdns.IsDuplicate(o, rr) {
			return
		}
	}
	// One TTL per RRset (RFC 2181 5.2): the first one written wins.
	if len(set) > 0 {
		h.Ttl = set[0].Header().Ttl
	}
	n.rrs[h.Rrtype] = append(set, rr)
}

func (n *node) rrsOf(t uint16) []mdns.RR {
	if n == nil {
		return nil
	}
	return n.rrs[t]
}

// below reports whether name is at or under a delegation point other than
// itself being the apex.
func (z *zone) below(name string) bool {
	for p := name; p != z.origin && p != "."; p = parentName(p) {
		if n := z.nodes[p]; n != nil && n.cut {
			return true
		}
	}
	return false
}
