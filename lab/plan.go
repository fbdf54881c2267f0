package lab

import (
	"fmt"
	"net/netip"
)

// Roles name the namespaces of a lab; the namespace of a role is
// "<lab name>-<role>" (see [Lab.NS]). LAN hosts are "lan1".."lanN" and ISP
// routers "isp1".."ispN".
const (
	RoleGW       = "gw"   // the multihome gateway
	RoleCore     = "core" // the Internet core router, hosting the servers
	RoleUpstream = "up"   // the shared upstream router (Spec.SharedUpstream only)
)

// RoleLAN returns the role of LAN host k (1-based).
func RoleLAN(k int) string { return fmt.Sprintf("lan%d", k) }

// RoleISP returns the role of ISP router k (1-based).
func RoleISP(k int) string { return fmt.Sprintf("isp%d", k) }

// Interface names.
const (
	GWLANIface        = "lan0"  // gw: the LAN bridge, 192.0.2.1/25
	HostIface         = "eth0"  // lanK: the host's only interface
	ISPDownIface      = "gw0"   // ispK: toward the gateway's wanK
	ISPUpIface        = "core0" // ispK: toward the core (or the shared upstream)
	CoreServerIface   = "lo"    // core: carries the server addresses
	CoreUpstreamIface = "up0"   // core: toward the shared upstream
	UpstreamCoreIface = "core0" // up: toward the core
)

// WANIface returns the name of the gateway's interface toward ISP k.
func WANIface(k int) string { return fmt.Sprintf("wan%d", k) }

// LANPortIface returns the name of the gateway's bridge port toward LAN host k.
func LANPortIface(k int) string { return fmt.Sprintf("lanp%d", k) }

// UplinkPeerIface returns the name of the interface toward ISP k in the core
// (or in the shared upstream).
func UplinkPeerIface(k int) string { return fmt.Sprintf("isp%d", k) }

// The addressing plan. Only documentation prefixes (RFC 5737, RFC 3849).
// docs/lab.md draws it.
const (
	LANPrefix   = "192.0.2.0/25"      // LAN; the gateway is .1, hosts .10, .11, ...
	LANGateway  = "192.0.2.1"         // gw lan0
	LANPrefix6  = "2001:db8:100::/64" // LAN IPv6; the gateway is ::1, hosts ::10, ::11, ...
	LANGateway6 = "2001:db8:100::1"   // gw lan0
	LANHostBase = 10                  // host k has .(9+k) and ::(9+k) (hex digits as decimal)

	// Gateway↔ISP k: 198.51.100.16(k-1)/28, ISP router .16(k-1)+1, gateway
	// .16(k-1)+2; IPv6 2001:db8:k::/64, router ::1, gateway ::2.
	// ISP k↔core: 198.51.100.(128+16(k-1))/28, core (or upstream) side +1,
	// ISP side +2; IPv6 2001:db8:ff00:k::/64, ::1 and ::2.
	// ISP k's IPv6 aggregate is 2001:db8:k::/48 (routed by the core to ISP
	// k); ISP k routes 2001:db8:k:100::/64 to the gateway as the LAN prefix
	// it delegates.
	ISPLinks   = "198.51.100.0/25"   // all gateway↔ISP /28s
	ISPUplinks = "198.51.100.128/25" // all ISP↔core /28s

	// Core↔shared upstream (Spec.SharedUpstream): core .241, upstream .242;
	// IPv6 ::1 and ::2.
	UpstreamLink  = "203.0.113.240/28"
	UpstreamLink6 = "2001:db8:ff00:ff::/64"

	// Servers in the core, on its loopback. Every service (HTTP 80, DNS 53,
	// echo 7) answers on every server address; the names say which one a
	// test is meant to use.
	ProbeTarget1  = "203.0.113.10"
	ProbeTarget2  = "203.0.113.11"
	ProbeTarget3  = "203.0.113.12"
	DNSServer     = "203.0.113.53"
	HTTPServer    = "203.0.113.80"
	EchoServer    = "203.0.113.7"
	ProbeTarget61 = "2001:db8:ffff::10"
	ProbeTarget62 = "2001:db8:ffff::11"
	ProbeTarget63 = "2001:db8:ffff::12"
	DNSServer6    = "2001:db8:ffff::53"
	HTTPServer6   = "2001:db8:ffff::80"
	EchoServer6   = "2001:db8:ffff::7"

	// DNSAnswer and DNSAnswer6 are what the lab DNS server answers for A
	// and AAAA queries of any name.
	DNSAnswer  = HTTPServer
	DNSAnswer6 = HTTPServer6

	// MaxISPs and MaxLANHosts bound a Spec.
	MaxISPs     = 8
	MaxLANHosts = 16
)

// ISP holds the facts of one ISP of a lab.
type ISP struct {
	Index  int    // 1-based
	Name   string // role: "isp1"
	NS     string // namespace of the ISP router
	WAN    string // gateway interface toward this ISP: "wan1"
	Metric int    // metric of the gateway's default route via this ISP: 100*Index

	Link    netip.Prefix // gateway↔ISP network, 198.51.100.0/28 for ISP 1
	Router  netip.Addr   // ISP router on Link (the gateway's next hop)
	GW      netip.Addr   // gateway (wanK) on Link
	Link6   netip.Prefix // 2001:db8:1::/64 for ISP 1
	Router6 netip.Addr
	GW6     netip.Addr

	Aggregate6 netip.Prefix // 2001:db8:k::/48, routed to this ISP by the core
	Delegated6 netip.Prefix // 2001:db8:k:100::/64, routed by the ISP to GW6

	Uplink        netip.Prefix // ISP↔core network, 198.51.100.128/28 for ISP 1
	UplinkRouter  netip.Addr   // ISP router on Uplink
	UplinkPeer    netip.Addr   // core (or shared upstream) on Uplink
	Uplink6       netip.Prefix
	UplinkRouter6 netip.Addr
	UplinkPeer6   netip.Addr
}

// Host is a LAN host.
type Host struct {
	Index int    // 1-based
	Name  string // role: "lan1"
	NS    string
	Iface string       // HostIface
	Port  string       // gateway bridge port toward the host: "lanp1"
	Addr  netip.Prefix // 192.0.2.10/25 for host 1
	Addr6 netip.Prefix // 2001:db8:100::10/64 for host 1
}

// Servers lists the server addresses in the core.
type Servers struct {
	Probe  []netip.Addr // three probe targets
	Probe6 []netip.Addr
	DNS    netip.Addr
	DNS6   netip.Addr
	HTTP   netip.Addr
	HTTP6  netip.Addr
	Echo   netip.Addr
	Echo6  netip.Addr
}

// All returns every server address, IPv4 first.
func (s Servers) All() []netip.Addr {
	all := append([]netip.Addr{}, s.Probe...)
	all = append(all, s.DNS, s.HTTP, s.Echo)
	all = append(all, s.Probe6...)
	return append(all, s.DNS6, s.HTTP6, s.Echo6)
}

// DefaultServers are the server addresses of every lab.
var DefaultServers = Servers{
	Probe:  addrs(ProbeTarget1, ProbeTarget2, ProbeTarget3),
	Probe6: addrs(ProbeTarget61, ProbeTarget62, ProbeTarget63),
	DNS:    netip.MustParseAddr(DNSServer),
	DNS6:   netip.MustParseAddr(DNSServer6),
	HTTP:   netip.MustParseAddr(HTTPServer),
	HTTP6:  netip.MustParseAddr(HTTPServer6),
	Echo:   netip.MustParseAddr(EchoServer),
	Echo6:  netip.MustParseAddr(EchoServer6),
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func v4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

// v6 returns 2001:db8:g2:g3::last (groups in hex).
func v6(g2, g3 uint16, last uint16) netip.Addr {
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	b[4], b[5] = byte(g2>>8), byte(g2)
	b[6], b[7] = byte(g3>>8), byte(g3)
	b[14], b[15] = byte(last>>8), byte(last)
	return netip.AddrFrom16(b)
}

// PlanISP returns the addressing of ISP k (1..MaxISPs); NS is left empty.
func PlanISP(k int) ISP {
	if k < 1 || k > MaxISPs {
		panic(fmt.Sprintf("lab: ISP %d out of range 1..%d", k, MaxISPs))
	}
	base := 16 * (k - 1)
	up := 128 + base
	g := uint16(k)
	return ISP{
		Index:  k,
		Name:   RoleISP(k),
		WAN:    WANIface(k),
		Metric: 100 * k,

		Link:    netip.PrefixFrom(v4(198, 51, 100, base), 28),
		Router:  v4(198, 51, 100, base+1),
		GW:      v4(198, 51, 100, base+2),
		Link6:   netip.PrefixFrom(v6(g, 0, 0), 64),
		Router6: v6(g, 0, 1),
		GW6:     v6(g, 0, 2),

		Aggregate6: netip.PrefixFrom(v6(g, 0, 0), 48),
		Delegated6: netip.PrefixFrom(v6(g, 0x100, 0), 64),

		Uplink:        netip.PrefixFrom(v4(198, 51, 100, up), 28),
		UplinkPeer:    v4(198, 51, 100, up+1),
		UplinkRouter:  v4(198, 51, 100, up+2),
		Uplink6:       netip.PrefixFrom(v6(0xff00, g, 0), 64),
		UplinkPeer6:   v6(0xff00, g, 1),
		UplinkRouter6: v6(0xff00, g, 2),
	}
}

// PlanHost returns the addressing of LAN host k (1..MaxLANHosts); NS is left
// empty.
func PlanHost(k int) Host {
	if k < 1 || k > MaxLANHosts {
		panic(fmt.Sprintf("lab: LAN host %d out of range 1..%d", k, MaxLANHosts))
	}
	n := LANHostBase + k - 1
	return Host{
		Index: k,
		Name:  RoleLAN(k),
		Iface: HostIface,
		Port:  LANPortIface(k),
		Addr:  netip.PrefixFrom(v4(192, 0, 2, n), 25),
		// ::10 for host 1: the decimal digits read as hex, as in the docs.
		Addr6: netip.PrefixFrom(v6(0x100, 0, uint16(n/10*16+n%10)), 64),
	}
}

// Upstream link addresses (Spec.SharedUpstream).
var (
	upstreamCore  = netip.MustParsePrefix("203.0.113.241/28")
	upstreamUp    = netip.MustParsePrefix("203.0.113.242/28")
	upstreamCore6 = netip.MustParsePrefix("2001:db8:ff00:ff::1/64")
	upstreamUp6   = netip.MustParsePrefix("2001:db8:ff00:ff::2/64")
)
