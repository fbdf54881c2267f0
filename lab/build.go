package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/multihome/multihome/netns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// builder holds the open netlink handles and namespace descriptors of a lab
// while it is being built or repaired.
type builder struct {
	l   *Lab
	h   map[string]*netlink.Handle // role → handle in its namespace
	fds map[string]vnetns.NsHandle
}

func (l *Lab) newBuilder(roles ...string) (*builder, error) {
	b := &builder{l: l, h: map[string]*netlink.Handle{}, fds: map[string]vnetns.NsHandle{}}
	for _, r := range roles {
		if _, err := b.handle(r); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *builder) handle(role string) (*netlink.Handle, error) {
	if h, ok := b.h[role]; ok {
		return h, nil
	}
	ns := b.l.NS(role)
	fd, err := vnetns.GetFromPath(netns.Path(ns))
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", ns, err)
	}
	b.h[role], b.fds[role] = h, fd
	return h, nil
}

func (b *builder) close() {
	for _, h := range b.h {
		h.Close()
	}
	for _, fd := range b.fds {
		fd.Close()
	}
}

// buildHook, when set by a test, runs after each build stage; an error
// fails the build there.
var buildHook func(stage string) error

// build creates the lab. The caller tears down on error.
func (l *Lab) build(ctx context.Context) error {
	roles := l.Roles()
	for _, r := range roles {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := netns.Add(l.NS(r)); err != nil {
			return err
		}
	}
	// Written early so that a crash while building leaves a findable lab.
	if err := l.writeState(); err != nil {
		return err
	}
	for _, r := range roles {
		if err := setSysctls(l.NS(r), !strings.HasPrefix(r, "lan")); err != nil {
			return err
		}
	}
	b, err := l.newBuilder(roles...)
	if err != nil {
		return err
	}
	defer b.close()
	for _, step := range []struct {
		name string
		fn   func() error
	}{{"links", b.links}, {"addresses", b.addresses}, {"up", b.up}, {"routes", b.routes}} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step.fn(); err != nil {
			return err
		}
		if buildHook != nil {
			if err := buildHook(step.name); err != nil {
				return err
			}
		}
	}
	srv, err := startServers(ctx, l.NS(RoleCore), l.log)
	if err != nil {
		return err
	}
	l.srv = srv
	if err := l.writeState(); err != nil {
		return err
	}
	return l.settle(ctx)
}

// setSysctls prepares a fresh namespace: no reverse-path filter, no IPv6
// duplicate address detection (addresses are usable at once), IPv6
// addresses kept while a link is down (faults are reversible), and
// forwarding on routers.
func setSysctls(ns string, router bool) error {
	settings := [][2]string{
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/all/keep_addr_on_down", "1"},
		{"net/ipv6/conf/default/keep_addr_on_down", "1"},
	}
	if router {
		settings = append(settings,
			[2]string{"net/ipv4/ip_forward", "1"},
			[2]string{"net/ipv6/conf/all/forwarding", "1"},
		)
	}
	return netns.Do(ns, func() error {
		for _, s := range settings {
			if err := os.WriteFile(filepath.Join("/proc/sys", s[0]), []byte(s[1]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s in %s: %w", s[0], ns, err)
			}
		}
		return nil
	})
}

// veth creates a veth pair with one end in each namespace, from inside
// the first one.
func (b *builder) veth(role, name, peerRole, peerName string) error {
	h, err := b.handle(role)
	if err != nil {
		return err
	}
	if _, err := b.handle(peerRole); err != nil {
		return err
	}
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(int(b.fds[peerRole])),
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s-%s/%s: %w", b.l.NS(role), name, b.l.NS(peerRole), peerName, err)
	}
	return nil
}

// uplinkRole is where ISP uplinks end: the core, or the shared upstream.
func (l *Lab) uplinkRole() string {
	if l.Spec.SharedUpstream {
		return RoleUpstream
	}
	return RoleCore
}

func (b *builder) links() error {
	l := b.l
	if l.Spec.SharedUpstream {
		if err := b.veth(RoleUpstream, UpstreamCoreIface, RoleCore, CoreUpstreamIface); err != nil {
			return err
		}
	}
	for _, isp := range l.ISPs {
		if err := b.veth(isp.Name, ISPUpIface, l.uplinkRole(), UplinkPeerIface(isp.Index)); err != nil {
			return err
		}
		if err := b.veth(isp.Name, ISPDownIface, RoleGW, isp.WAN); err != nil {
			return err
		}
	}
	gw := b.h[RoleGW]
	if err := gw.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: GWLANIface}}); err != nil {
		return fmt.Errorf("bridge %s: %w", GWLANIface, err)
	}
	br, err := gw.LinkByName(GWLANIface)
	if err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := b.veth(h.Name, h.Iface, RoleGW, h.Port); err != nil {
			return err
		}
		port, err := gw.LinkByName(h.Port)
		if err != nil {
			return err
		}
		if err := gw.LinkSetMaster(port, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", h.Port, GWLANIface, err)
		}
	}
	return nil
}

// addr assigns prefixes (address/length) to an interface, without DAD.
func (b *builder) addr(role, iface string, prefixes ...netip.Prefix) error {
	h, err := b.handle(role)
	if err != nil {
		return err
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b.l.NS(role), iface, err)
	}
	for _, p := range prefixes {
		a := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("%s: address %s on %s: %w", b.l.NS(role), p, iface, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func on(a netip.Addr, p netip.Prefix) netip.Prefix { return netip.PrefixFrom(a, p.Bits()) }

func (b *builder) addresses() error {
	l := b.l
	var srv []netip.Prefix
	for _, a := range l.Servers.All() {
		srv = append(srv, host(a))
	}
	if err := b.addr(RoleCore, CoreServerIface, srv...); err != nil {
		return err
	}
	if l.Spec.SharedUpstream {
		if err := b.addr(RoleCore, CoreUpstreamIface, upstreamCore, upstreamCore6); err != nil {
			return err
		}
		if err := b.addr(RoleUpstream, UpstreamCoreIface, upstreamUp, upstreamUp6); err != nil {
			return err
		}
	}
	for _, isp := range l.ISPs {
		if err := b.ispAddresses(isp); err != nil {
			return err
		}
		if err := b.addr(l.uplinkRole(), UplinkPeerIface(isp.Index),
			on(isp.UplinkPeer, isp.Uplink), on(isp.UplinkPeer6, isp.Uplink6)); err != nil {
			return err
		}
		if err := b.addr(RoleGW, isp.WAN, on(isp.GW, isp.Link), on(isp.GW6, isp.Link6)); err != nil {
			return err
		}
	}
	if err := b.addr(RoleGW, GWLANIface, on(l.GWLAN, l.LAN), on(l.GWLAN6, l.LAN6)); err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := b.addr(h.Name, h.Iface, h.Addr, h.Addr6); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) ispAddresses(isp ISP) error {
	if err := b.addr(isp.Name, ISPUpIface, on(isp.UplinkRouter, isp.Uplink), on(isp.UplinkRouter6, isp.Uplink6)); err != nil {
		return err
	}
	return b.addr(isp.Name, ISPDownIface, on(isp.Router, isp.Link), on(isp.Router6, isp.Link6))
}

// up sets every link of every namespace up.
func (b *builder) up() error {
	for role, h := range b.h {
		links, err := h.LinkList()
		if err != nil {
			return fmt.Errorf("%s: list links: %w", b.l.NS(role), err)
		}
		for _, link := range links {
			if err := h.LinkSetUp(link); err != nil {
				return fmt.Errorf("%s: set %s up: %w", b.l.NS(role), link.Attrs().Name, err)
			}
		}
	}
	return nil
}

// route installs dst via gw on iface in role's namespace (replacing an
// equal route).
func (b *builder) route(role, iface string, dst netip.Prefix, gw netip.Addr, metric int) error {
	h, err := b.handle(role)
	if err != nil {
		return err
	}
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b.l.NS(role), iface, err)
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       ipNet(dst),
		Gw:        gw.AsSlice(),
		Priority:  metric,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("%s: route %s via %s dev %s: %w", b.l.NS(role), dst, gw, iface, err)
	}
	return nil
}

var (
	default4 = netip.MustParsePrefix("0.0.0.0/0")
	default6 = netip.MustParsePrefix("::/0")
)

func (b *builder) routes() error {
	l := b.l
	for _, h := range l.Hosts {
		if err := b.route(h.Name, h.Iface, default4, l.GWLAN, 0); err != nil {
			return err
		}
		if err := b.route(h.Name, h.Iface, default6, l.GWLAN6, 0); err != nil {
			return err
		}
	}
	for _, isp := range l.ISPs {
		if err := b.route(RoleGW, isp.WAN, default4, isp.Router, isp.Metric); err != nil {
			return err
		}
		if err := b.route(RoleGW, isp.WAN, default6, isp.Router6, isp.Metric); err != nil {
			return err
		}
		if err := b.ispRoutes(isp); err != nil {
			return err
		}
		// The core (or the shared upstream) reaches each ISP's networks
		// through it. The LAN is not routed: the gateway translates.
		peer, iface := l.uplinkRole(), UplinkPeerIface(isp.Index)
		if err := b.route(peer, iface, isp.Link, isp.UplinkRouter, 0); err != nil {
			return err
		}
		if err := b.route(peer, iface, isp.Aggregate6, isp.UplinkRouter6, 0); err != nil {
			return err
		}
		if l.Spec.SharedUpstream {
			for _, dst := range []netip.Prefix{isp.Link, isp.Uplink} {
				if err := b.route(RoleCore, CoreUpstreamIface, dst, upstreamUp.Addr(), 0); err != nil {
					return err
				}
			}
			for _, dst := range []netip.Prefix{isp.Aggregate6, isp.Uplink6} {
				if err := b.route(RoleCore, CoreUpstreamIface, dst, upstreamUp6.Addr(), 0); err != nil {
					return err
				}
			}
		}
	}
	if l.Spec.SharedUpstream {
		if err := b.route(RoleUpstream, UpstreamCoreIface, default4, upstreamCore.Addr(), 0); err != nil {
			return err
		}
		if err := b.route(RoleUpstream, UpstreamCoreIface, default6, upstreamCore6.Addr(), 0); err != nil {
			return err
		}
	}
	return nil
}

// ispRoutes installs the ISP router's own routes: default toward the core
// (or shared upstream), and the delegated LAN prefix toward the gateway.
func (b *builder) ispRoutes(isp ISP) error {
	if err := b.route(isp.Name, ISPUpIface, default4, isp.UplinkPeer, 0); err != nil {
		return err
	}
	if err := b.route(isp.Name, ISPUpIface, default6, isp.UplinkPeer6, 0); err != nil {
		return err
	}
	return b.route(isp.Name, ISPDownIface, isp.Delegated6, isp.GW6, 0)
}

// repairISP brings an ISP router back to its built state after its
// gateway-facing link was set down: link up, addresses (with their prefix
// routes) and routes.
func (b *builder) repairISP(isp ISP) error {
	h, err := b.handle(isp.Name)
	if err != nil {
		return err
	}
	link, err := h.LinkByName(ISPDownIface)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", isp.NS, ISPDownIface, err)
	}
	// Addresses are kept while down (keep_addr_on_down), and the kernel
	// restores their connected routes; static routes were flushed.
	if err := b.ispAddresses(isp); err != nil {
		return err
	}
	return b.ispRoutes(isp)
}
