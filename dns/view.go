package dns

import (
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// view is what the query path reads: an immutable snapshot of every
// served zone and the answers its names may give. The control side builds
// a new view on every change and swaps it in atomically.
type view struct {
	zones   map[string]*zoneView // served zones by origin
	all     []*zoneView          // every zone, served or push-only
	udpSize int
	rrl     *rrl
}

type zoneView struct {
	z      *zone
	serial uint32
	soa    *mdns.SOA // with the serial
	dyn    []dynView // by dynName.idx
}

// dynOf is the current view of one of the zone's steered names.
func (zv *zoneView) dynOf(n *dynName) *dynView {
	if n.idx < len(zv.dyn) {
		return &zv.dyn[n.idx]
	}
	return nil
}

// dynView is a name's answers for the current link states.
type dynView struct {
	n *dynName
	// sets are the answer sets by family (nil: none, NODATA); mostly
	// shared with the name's cache, so a view of 100K names stays small.
	sets [2]*answerSet
	// allDown: no link of the name is usable; sets hold the fallback
	// answer (or nothing, with servfail).
	allDown  bool
	servfail bool
	// stable is since when none of the name's links changed; holdDown is
	// set while one of them waits out its hold-down.
	stable   time.Time
	holdDown bool
	// why says, for logs, which links are in the answer and why.
	why string
}

// answerSet is the addresses one query type may be answered with.
type answerSet struct {
	addrs  []netip.Addr
	ips    []net.IP
	cum    []float64 // cumulative weights, for weighted
	pick   int       // weighted: how many addresses per answer
	rotate bool
}

// linkState is what the server knows of one link.
type linkState struct {
	st      monitor.Status
	known   bool
	changed time.Time // when what matters to DNS last changed
}

// relevant reports whether two statuses differ in what DNS answers depend
// on (spare capacity excepted).
func relevant(a, b monitor.Status) bool {
	return a.State != b.State || a.Admin != b.Admin || a.Saturated != b.Saturated || a.HoldDown != b.HoldDown
}

// tier classifies a link for a name: 0 preferred, 1 demoted, -1 unusable.
func (n *dynName) tier(ls *linkState) int {
	if ls == nil || !ls.known || !ls.st.AcceptsNew() {
		return -1
	}
	t := 0
	apply := func(mode string) {
		switch mode {
		case config.DNSDemote:
			t = max(t, 1)
		case config.DNSRemove:
			t = -1
		}
	}
	if ls.st.State == monitor.Degraded {
		apply(n.degraded)
	}
	if t >= 0 && ls.st.Saturated {
		apply(n.saturated)
	}
	return t
}

// lastGood remembers a name's last answers while some link was usable.
type lastGood map[string][2][]netip.Addr

// compute fills d (whose n is set) from the link states. A rebuild calls
// it for every steered name, so it allocates nothing in the common case
// (policy all, no demotion).
//
// lt is the links' states by their index in the config.
func (d *dynView) compute(lt []*linkState, lg lastGood, now time.Time) {
	n := d.n
	d.setStable(lt, now)
	var buf [2][2][8]addrRec
	var chosen [2][]addrRec
	var masks [2]uint64
	var spare map[string]float64
	if n.policy == config.DNSPolicyWeighted {
		spare = map[string]float64{}
	}
	usable := false
	var why []string
	for f := range 2 {
		tiers := [2][]addrRec{buf[f][0][:0], buf[f][1][:0]}
		var tm [2]uint64
		for i, r := range n.recs[f] {
			ls := lt[r.li]
			t := n.tier(ls)
			if t < 0 {
				continue
			}
			tiers[t] = append(tiers[t], r)
			if i < 64 {
				tm[t] |= 1 << i
			}
			if spare != nil {
				spare[r.link] = ls.st.Spare()
			}
		}
		for t := range tiers {
			if len(tiers[t]) > 0 {
				chosen[f] = tiers[t]
				if len(n.recs[f]) <= 64 {
					masks[f] = tm[t]
				}
				usable = true
				if t == 1 {
					why = append(why, mdns.TypeToString[famType(f)]+" from demoted links")
				}
				break
			}
		}
	}
	if !usable {
		d.allDownSets(lg)
		return
	}
	for f := range 2 {
		if len(chosen[f]) > 0 { // else NODATA for this family
			d.sets[f] = n.policySet(f, chosen[f], masks[f], spare)
		}
	}
	if n.allDown == config.DNSAllDownLastGood {
		lg[n.name] = [2][]netip.Addr{d.set(0).addrs, d.set(1).addrs}
	}
	if len(why) > 0 {
		d.why = strings.Join(why, ", ")
	}
}

// setStable dates the name's last change: its links' and its records'.
func (d *dynView) setStable(lt []*linkState, now time.Time) {
	see := func(ls *linkState) {
		if ls == nil {
			return
		}
		if ls.changed.After(d.stable) {
			d.stable = ls.changed
		}
		if ls.st.HoldDown {
			d.holdDown = true
		}
	}
	if m := d.n.linkMask; m != 0 {
		// The links as bits of the name itself: no other memory to
		// touch on the rebuild of 100K names.
		for ; m != 0; m &= m - 1 {
			see(lt[bits.TrailingZeros64(m)])
		}
	} else {
		for _, li := range d.n.linkIdx {
			see(lt[li])
		}
	}
	if d.n.recsChanged.After(d.stable) {
		d.stable = d.n.recsChanged
	}
	if d.stable.IsZero() {
		d.stable = now
	}
}

// allDownSets gives the answer of a name none of whose links is usable,
// by its all_down rule.
func (d *dynView) allDownSets(lg lastGood) {
	n := d.n
	d.allDown = true
	switch n.allDown {
	case config.DNSAllDownServfail:
		d.servfail = true
		d.why = "all links down: SERVFAIL"
		return
	case config.DNSAllDownLastGood:
		if g, ok := lg[n.name]; ok {
			for f := range 2 {
				s := fixedSet(g[f], true)
				d.sets[f] = &s
			}
			d.why = "all links down: last known good"
			return
		}
	}
	for f := range 2 {
		d.sets[f] = n.setOf(f, n.recs[f], n.allMask(f))
	}
	d.why = "all links down: every address"
}

// policySet applies the name's policy to the usable records c of family
// f (mask: which of recs[f] they are). spare is the links' spare
// capacity (weighted only).
func (n *dynName) policySet(f int, c []addrRec, mask uint64, spare map[string]float64) *answerSet {
	if n.policy == config.DNSPolicyAll {
		return n.setOf(f, c, mask) // shared: nothing allocated
	}
	s := new(answerSet)
	switch n.policy {
	case config.DNSPolicyFailover:
		best := slices.MinFunc(c, func(a, b addrRec) int { return cmp.Compare(a.priority, b.priority) }).priority
		c = slices.DeleteFunc(slices.Clone(c), func(r addrRec) bool { return r.priority != best })
		*s = fixedSet(addrsOf(c), true)
	case config.DNSPolicyFirst:
		c = slices.Clone(c)
		slices.SortStableFunc(c, func(a, b addrRec) int { return cmp.Compare(a.priority, b.priority) })
		*s = fixedSet(addrsOf(c[:min(len(c), n.count)]), false)
	case config.DNSPolicyWeighted:
		*s = n.weightedSet(c, spare)
	default:
		return n.setOf(f, c, mask)
	}
	return s
}

// weightedSet draws from c by weight × the link's spare capacity.
func (n *dynName) weightedSet(c []addrRec, spare map[string]float64) answerSet {
	s := fixedSet(addrsOf(c), false)
	s.pick = min(n.count, len(c))
	total := 0.0
	w := make([]float64, len(c))
	for i, r := range c {
		w[i] = r.weight * spare[r.link]
		total += w[i]
	}
	if total <= 0 {
		for i := range w {
			w[i] = 1
		}
	}
	s.cum = make([]float64, len(c))
	acc := 0.0
	for i := range w {
		acc += w[i]
		s.cum[i] = acc
	}
	return s
}

func addrsOf(rs []addrRec) []netip.Addr {
	out := make([]netip.Addr, len(rs))
	for i, r := range rs {
		out[i] = r.addr
	}
	return out
}

func fixedSet(addrs []netip.Addr, rotate bool) answerSet {
	s := answerSet{addrs: addrs, rotate: rotate && len(addrs) > 1}
	s.ips = make([]net.IP, len(addrs))
	for i, a := range addrs {
		s.ips[i] = net.IP(a.AsSlice())
	}
	return s
}

// published returns the addresses the name is published with (in
// transfers and pushes): the whole answer set.
func (d *dynView) published(f int) []netip.Addr {
	if d == nil || d.servfail {
		return nil
	}
	return d.set(f).addrs
}

// noAddrs is the answer set of a family with no address (NODATA).
var noAddrs answerSet

// set is the answer set of family f.
func (d *dynView) set(f int) *answerSet {
	if s := d.sets[f]; s != nil {
		return s
	}
	return &noAddrs
}

// ttlAt is the TTL of answers given at now: MinTTL right after a change
// or during a hold-down, growing with the time the links stay stable up
// to the configured TTL.
func (d *dynView) ttlAt(now time.Time) uint32 {
	n := d.n
	if d.allDown || d.holdDown {
		return n.minTTL
	}
	age := now.Sub(d.stable)
	if age <= 0 {
		return n.minTTL
	}
	s := uint64(age / time.Second)
	return uint32(min(max(s, uint64(n.minTTL)), uint64(n.ttl)))
}

// answer appends the records for family f to out, with owner as the
// owner name (the query's spelling) and the policy applied. rot is a
// rotation counter.
func (d *dynView) answer(out []mdns.RR, f int, owner string, ttl uint32, rot uint64) []mdns.RR {
	s := d.set(f)
	var buf [16]int
	for _, i := range d.indices(f, rot, buf[:0]) {
		h := mdns.RR_Header{Name: owner, Rrtype: famType(f), Class: mdns.ClassINET, Ttl: ttl}
		if f == famA {
			out = append(out, &mdns.A{Hdr: h, A: s.ips[i]})
		} else {
			out = append(out, &mdns.AAAA{Hdr: h, AAAA: s.ips[i]})
		}
	}
	return out
}

// indices appends to idx which addresses of family f one answer gives, in
// order: rotated, drawn by weight, or as they are.
func (d *dynView) indices(f int, rot uint64, idx []int) []int {
	s := d.set(f)
	n := len(s.ips)
	if n == 0 {
		return idx
	}
	switch {
	case s.cum != nil:
		// Weighted draw without replacement.
		var taken uint64 // bitmask; sets are small
		total := s.cum[n-1]
		for range s.pick {
			var i int
			for tries := 0; ; tries++ {
				x := rand.Float64() * total
				i, _ = slices.BinarySearch(s.cum, x)
				if i >= n {
					i = n - 1
				}
				if i >= 64 || taken&(1<<i) == 0 || tries > 16 {
					break
				}
			}
			if i < 64 && taken&(1<<i) != 0 {
				for j := range min(n, 64) {
					if taken&(1<<j) == 0 {
						i = j
						break
					}
				}
			}
			if i < 64 {
				taken |= 1 << i
			}
			idx = append(idx, i)
		}
	case s.rotate:
		off := int(rot % uint64(n))
		for k := range n {
			idx = append(idx, (off+k)%n)
		}
	default:
		for i := range n {
			idx = append(idx, i)
		}
	}
	return idx
}

func (d *dynView) String() string {
	return fmt.Sprintf("A %v AAAA %v", d.published(famA), d.published(famAAAA))
}
