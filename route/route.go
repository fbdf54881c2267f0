// Package route is the only writer of multihome's ip rules and routes.
// Several owners share the kernel's policy routing, each in its own
// [Lease] of rule priorities and tables: outbound (one routing table per
// link holding its default route, and the rules that select a table by
// packet mark or source address), ra (IPv6 source rules), bgp (imported
// routes, protocol bgp, in the links' tables). Each
// declares its desired [State] with [Manager.Set](owner, state), which
// adds, replaces and deletes only what differs from the kernel inside that
// owner's lease; calling it twice changes nothing. One loop
// ([Manager.Watch]) repairs drift for every owner on the kernel's own rule
// and route events. No other package writes rules or routes (a test greps).
//
// The mark scheme is shared with the link monitor: a probe socket with
// SO_MARK = [Scheme.Mark] of its link is routed through that link's table
// by the fwmark rule, and the outbound ruleset leaves such packets alone.
package route

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/multihome/multihome/config"
)

// Scheme maps link indexes (positions in config.Links) to marks, routing
// tables and rule priorities.
//
// With the defaults (table base 31000, priority base 31000, mask
// 0x00ff0000), link i has mark (i+1)<<16 and table 31000+i; table 31255
// holds the last-resort unreachable routes, selected by mark 0x00ff0000.
// Rule priorities:
//
//	P+0        lookup main suppress_prefixlength 0  (specific routes first)
//	P+1        fwmark LastResort/mask lookup table base+255
//	P+10+i     fwmark Mark(i)/mask lookup Table(i)
//	P+300+i    from Address(i) lookup Table(i)
//
// With a transit link t to an HA partner (config.Config.TransitLink),
// replies the standby sends back to the partner carry [Scheme.PartnerReturn]
// and skip the main table ([Scheme.WithPartnerReturn]):
//
//	P+0        not fwmark PartnerReturn/mask lookup main suppress_prefixlength 0
//	P+2        fwmark PartnerReturn/mask lookup Table(t)
type Scheme struct {
	TableBase    int
	PriorityBase int
	MarkMask     uint32
}

// DefaultScheme is the scheme of a config without an outbound section.
var DefaultScheme = SchemeOf(config.Outbound{TableBase: config.DefaultTableBase, RulePriority: config.DefaultRulePriority, MarkMask: config.DefaultMarkMask})

// SchemeOf is the one constructor of a scheme: the marks, tables and
// priorities of an outbound section (with its defaults filled in, as
// config.Config.EffectiveOutbound returns it).
func SchemeOf(o config.Outbound) Scheme {
	return Scheme{TableBase: o.TableBase, PriorityBase: o.RulePriority, MarkMask: o.MarkMask}
}

// SchemeFor returns the scheme of cfg: SchemeOf(cfg.EffectiveOutbound()).
func SchemeFor(cfg *config.Config) Scheme { return SchemeOf(cfg.EffectiveOutbound()) }

// Mark returns the packet mark of the link at index i with the default
// scheme. Use SchemeFor(cfg).Mark(i) when the config may override it.
func Mark(i int) uint32 { return DefaultScheme.Mark(i) }

// Table returns the routing table of the link at index i with the default
// scheme.
func Table(i int) int { return DefaultScheme.Table(i) }

func (s Scheme) shift() int { return bits.TrailingZeros32(s.MarkMask) }

// Mark returns the mark (within MarkMask) of link i.
func (s Scheme) Mark(i int) uint32 { return uint32(i+1) << s.shift() }

// LastResort returns the mark that sends a packet to the unreachable
// table: all bits of the mask.
func (s Scheme) LastResort() uint32 { return s.MarkMask }

// LinkOf returns the link index of mark m, or -1 if m (masked) is not a
// link's mark.
func (s Scheme) LinkOf(m uint32) int {
	v := (m & s.MarkMask) >> s.shift()
	if v == 0 || m&s.MarkMask == s.MarkMask {
		return -1
	}
	return int(v) - 1
}

// PartnerReturn is the mark of the packets an HA node sends back to its
// partner over the transit link: replies of flows the partner forwarded
// to this node's uplinks, while the partner holds the LAN. It is the
// third value from the top of the mask (the last resort and the bond
// mark are above it).
func (s Scheme) PartnerReturn() uint32 { return s.MarkMask - 2<<s.shift() }

// WithPartnerReturn adds to st (from [Scheme.Desired]) the rules that
// route packets marked [Scheme.PartnerReturn] through the transit link
// t's table, before the main table: their destinations are LAN hosts,
// which the main table would reach directly, past the partner that holds
// their flows' state.
func (s Scheme) WithPartnerReturn(st State, t int) State {
	for i, r := range st.Rules {
		if r.Family == 4 && r.Suppress {
			st.Rules[i].Invert, st.Rules[i].Mark, st.Rules[i].Mask = true, s.PartnerReturn(), s.MarkMask
		}
	}
	st.Rules = append(st.Rules, Rule{Family: 4, Priority: s.PriorityBase + 2, Mark: s.PartnerReturn(), Mask: s.MarkMask, Table: s.Table(t)})
	st.Sort()
	return st
}

// Table returns the routing table of link i.
func (s Scheme) Table(i int) int { return s.TableBase + i }

// UnreachableTable is the table of the last resort "unreachable".
func (s Scheme) UnreachableTable() int { return s.TableBase + config.TableRange - 1 }

// OwnsTable reports whether table t is in the scheme's range.
func (s Scheme) OwnsTable(t int) bool { return t >= s.TableBase && t < s.TableBase+config.TableRange }

// OwnsPriority reports whether rule priority p is in the scheme's range.
func (s Scheme) OwnsPriority(p int) bool {
	return p >= s.PriorityBase && p < s.PriorityBase+config.RulePriorityRange
}

// Rule is one ip rule. Its selectors are Src (from) and Mark/Mask (fwmark
// Mark/Mask, set when Mask is not 0); its action is Suppress (lookup main
// suppress_prefixlength 0) or a lookup of Table.
type Rule struct {
	Family   int // 4 or 6
	Priority int
	Table    int
	Suppress bool // lookup main suppress_prefixlength 0
	// Invert negates the selectors (ip rule add not ...).
	Invert bool
	Mark   uint32
	Mask   uint32
	Src    netip.Prefix
}

// Route is one route in a leased table: to Dst via Gateway on Dev, a
// device route when Gateway is unset, or unreachable. Metric 0 is the
// kernel's default (1024 for IPv6). Its protocol is its owner's
// ([Lease].Protocol).
type Route struct {
	Family      int
	Table       int
	Dst         netip.Prefix
	Gateway     netip.Addr
	Dev         string
	Unreachable bool
	Metric      int
}

// State is the desired (or observed) policy routing.
type State struct {
	Rules  []Rule
	Routes []Route
}

func (r Rule) key() string {
	if r.Src.IsValid() {
		return fmt.Sprintf("%d/%d/%s", r.Family, r.Priority, r.Src)
	}
	return fmt.Sprintf("%d/%d", r.Family, r.Priority)
}

func (r Route) key() string {
	return fmt.Sprintf("%d/%d/%s", r.Family, r.Table, r.Dst)
}

// String renders the rule as `ip rule add` arguments.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip -%d rule add pref %d", r.Family, r.Priority)
	if r.Invert {
		b.WriteString(" not")
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " from %s", r.Src)
	}
	if r.Mask != 0 {
		fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, r.Mask)
	}
	if r.Suppress {
		b.WriteString(" lookup main suppress_prefixlength 0")
		return b.String()
	}
	fmt.Fprintf(&b, " lookup %d", r.Table)
	return b.String()
}

// String renders the route as `ip route replace` arguments.
func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip -%d route replace", r.Family)
	dst := "default"
	if r.Dst.Bits() != 0 {
		dst = r.Dst.String()
	}
	if r.Unreachable {
		fmt.Fprintf(&b, " unreachable %s", dst)
	} else {
		fmt.Fprintf(&b, " %s", dst)
		if r.Gateway.IsValid() {
			fmt.Fprintf(&b, " via %s", r.Gateway)
		}
		if r.Dev != "" {
			fmt.Fprintf(&b, " dev %s", r.Dev)
		}
	}
	fmt.Fprintf(&b, " table %d", r.Table)
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

// Sort puts rules and routes in a canonical order.
func (s *State) Sort() {
	slices.SortFunc(s.Rules, func(a, b Rule) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Priority, b.Priority))
	})
	slices.SortFunc(s.Routes, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Table, b.Table), cmp.Compare(a.Dst.String(), b.Dst.String()))
	})
}

// String renders the state as ip commands, one per line, sorted.
func (s State) String() string {
	c := State{Rules: slices.Clone(s.Rules), Routes: slices.Clone(s.Routes)}
	c.Sort()
	var b strings.Builder
	for _, r := range c.Rules {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	for _, r := range c.Routes {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Link is what [Desired] needs to know about one link.
type Link struct {
	Index     int // position in config.Links
	Interface string
	Gateway4  netip.Addr
	Gateway6  netip.Addr
	Address4  netip.Addr
	Address6  netip.Addr
}

// Desired builds the policy routing for links: the suppress rules, one
// fwmark rule and table per link for each family it has a gateway in (a
// link with no gateway at all gets an IPv4 device route: point-to-point
// links), source rules for
// known addresses, and the last-resort unreachable table.
func (s Scheme) Desired(links []Link) State {
	var st State
	for _, fam := range []int{4, 6} {
		st.Rules = append(st.Rules,
			Rule{Family: fam, Priority: s.PriorityBase, Suppress: true},
			Rule{Family: fam, Priority: s.PriorityBase + 1, Mark: s.LastResort(), Mask: s.MarkMask, Table: s.UnreachableTable()})
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == 6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		st.Routes = append(st.Routes, Route{Family: fam, Table: s.UnreachableTable(), Dst: dst, Unreachable: true})
		for _, l := range links {
			gw, addr := l.Gateway4, l.Address4
			if fam == 4 && !gw.IsValid() && l.Gateway6.IsValid() {
				continue // an IPv6-only link
			}
			if fam == 6 {
				gw, addr = l.Gateway6, l.Address6
				if !gw.IsValid() {
					continue
				}
			}
			t := s.Table(l.Index)
			st.Rules = append(st.Rules, Rule{Family: fam, Priority: s.PriorityBase + 10 + l.Index, Mark: s.Mark(l.Index), Mask: s.MarkMask, Table: t})
			if addr.IsValid() {
				st.Rules = append(st.Rules, Rule{Family: fam, Priority: s.PriorityBase + 300 + l.Index, Src: netip.PrefixFrom(addr, addr.BitLen()), Table: t})
			}
			st.Routes = append(st.Routes, Route{Family: fam, Table: t, Dst: dst, Gateway: gw, Dev: l.Interface})
		}
	}
	st.Sort()
	return st
}
