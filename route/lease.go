package route

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
)

// Owner names a writer of rules and routes through the [Manager].
type Owner string

// The owners. Each has its own lease; their leases must not overlap.
const (
	// Outbound owns the links' tables (default and unreachable routes)
	// and the mark, source and suppress rules: [Scheme.Lease].
	Outbound Owner = "outbound"
	// RA owns the IPv6 source rules at ipv6.rule_priority and +1.
	RA Owner = "ra"
	// BGP owns the routes of protocol bgp it imports into the links'
	// tables.
	BGP Owner = "bgp"
	// (An HA pair writes no rules or routes of its own: keepalived moves
	// the virtual addresses, and both nodes run the same tables.)
)

// ProtoBGP is the routing protocol (RTPROT_BGP, 186) of the routes the
// BGP speaker imports into the links' tables: [BGPLease]. They coexist
// with outbound's default route in a link's table (a higher metric), and
// belong to the BGP owner only.
const ProtoBGP = netlink.RouteProtocol(unix.RTPROT_BGP)

// Lease is the part of the kernel's policy routing an owner writes: ip
// rules whose priority is in [FirstPriority, FirstPriority+Priorities)
// (of Family, or both when it is 0), and routes in the tables
// [FirstTable, FirstTable+Tables) of Protocol. A lease with Protocol 0
// holds the routes in its tables of every protocol that no other lease
// of those tables has (and writes them with the kernel's default, boot).
type Lease struct {
	FirstPriority, Priorities int
	Family                    int
	FirstTable, Tables        int
	Protocol                  netlink.RouteProtocol
}

// Lease is outbound's lease for the scheme: its priority and table
// ranges, every protocol but the other owners'.
func (s Scheme) Lease() Lease {
	return Lease{FirstPriority: s.PriorityBase, Priorities: config.RulePriorityRange, FirstTable: s.TableBase, Tables: config.TableRange}
}

// BGPLease is the BGP owner's lease in the scheme's tables: routes of
// protocol bgp, no rules.
func (s Scheme) BGPLease() Lease {
	return Lease{FirstTable: s.TableBase, Tables: config.TableRange, Protocol: ProtoBGP}
}

// RuleLease is a lease of n IPv6 or IPv4 (family) rule priorities from
// first, and no routes (the RA owner's).
func RuleLease(family, first, n int) Lease {
	return Lease{FirstPriority: first, Priorities: n, Family: family}
}

func (l Lease) ownsPriority(fam, p int) bool {
	return (l.Family == 0 || l.Family == fam) && p >= l.FirstPriority && p < l.FirstPriority+l.Priorities
}

func (l Lease) ownsTable(t int) bool { return t >= l.FirstTable && t < l.FirstTable+l.Tables }

func (l Lease) String() string {
	s := "no rules"
	if l.Priorities > 0 {
		s = fmt.Sprintf("rule priorities %d–%d", l.FirstPriority, l.FirstPriority+l.Priorities-1)
		if l.Family != 0 {
			s += fmt.Sprintf(" (IPv%d)", l.Family)
		}
	}
	if l.Tables > 0 {
		s += fmt.Sprintf(", tables %d–%d", l.FirstTable, l.FirstTable+l.Tables-1)
		if l.Protocol != 0 {
			s += fmt.Sprintf(" (protocol %d)", l.Protocol)
		}
	}
	return s
}

// overlaps reports whether a rule or a route could belong to both leases.
func (l Lease) overlaps(o Lease) bool {
	if l.Priorities > 0 && o.Priorities > 0 && (l.Family == 0 || o.Family == 0 || l.Family == o.Family) &&
		l.FirstPriority < o.FirstPriority+o.Priorities && o.FirstPriority < l.FirstPriority+l.Priorities {
		return true
	}
	if l.Tables > 0 && o.Tables > 0 && l.FirstTable < o.FirstTable+o.Tables && o.FirstTable < l.FirstTable+l.Tables {
		return l.Protocol == o.Protocol
	}
	return false
}
