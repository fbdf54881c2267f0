package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/multihome/multihome/netns"
	"github.com/vishvananda/netlink"
)

// A pair lab: two gateways ("gwa", "gwb") sharing the LAN through a switch
// namespace ("sw") and each ISP's handoff through a bridge in the ISP's
// router namespace, with a dedicated sync link between them. It is the
// shared-uplinks topology of docs/ha.md; the lab configures addresses and
// routes, nothing of keepalived, conntrackd or multihome.
const (
	RoleGWA    = "gwa"
	RoleGWB    = "gwb"
	RoleSwitch = "sw"

	SyncIface     = "sync0" // gwa/gwb: the sync link
	SwitchBridge  = "br0"   // sw: the LAN switch
	PairLANIface  = "lan0"  // gwa/gwb: toward the LAN switch
	SyncPrefix    = "203.0.113.248/30"
	LANVirtual    = LANGateway // the LAN's gateway address, held by the master
	pairVIPOffset = 5          // ISP k's virtual address: link base + 5
)

// PairNode is one gateway of a pair lab.
type PairNode struct {
	Role string // RoleGWA or RoleGWB
	NS   string
	// LAN is the node's own LAN address; Sync its sync-link address; WAN
	// its own address on each ISP's link (index k-1).
	LAN  netip.Prefix
	Sync netip.Prefix
	WAN  []netip.Addr
}

// Pair is a running pair lab.
type Pair struct {
	*Lab
	Nodes [2]PairNode
	// VIPs are the virtual addresses: the LAN's gateway and each ISP's
	// site address (SNAT), index k-1.
	LANVIP netip.Prefix
	WANVIP []netip.Prefix
	// Split is the split-uplinks topology (UpSplitPair): ISP k's handoff
	// reaches gateway k only; the other node's WAN address is invalid.
	Split bool
}

// Reaches reports whether gateway Nodes[node] has a handoff of isp.
func (p *Pair) Reaches(node int, isp ISP) bool { return !p.Split || isp.Index == node+1 }

// PairVIP returns ISP k's virtual (SNAT) address of a pair lab.
func PairVIP(isp ISP) netip.Prefix {
	return netip.PrefixFrom(offset(isp.Link.Addr(), pairVIPOffset), isp.Link.Bits())
}

// UpPair builds a pair lab with spec.ISPs ISPs (default 2) and
// spec.LANHosts hosts (default 1). spec.SharedUpstream is not supported.
func UpPair(ctx context.Context, spec Spec, log *slog.Logger) (*Pair, error) {
	return upPair(ctx, spec, log, false)
}

func upPair(ctx context.Context, spec Spec, log *slog.Logger, split bool) (*Pair, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if spec.SharedUpstream {
		return nil, errors.New("pair lab: shared_upstream is not supported")
	}
	if existing, err := netns.List(spec.Name + "-"); err != nil || len(existing) > 0 {
		return nil, fmt.Errorf("lab %s exists already (namespaces %v, %v)", spec.Name, existing, err)
	}
	p := &Pair{Lab: newLab(spec, log), Split: split}
	p.LANVIP = netip.MustParsePrefix(LANVirtual + "/25")
	sync := netip.MustParsePrefix(SyncPrefix)
	for i, role := range []string{RoleGWA, RoleGWB} {
		// gwa: LAN .2, sync .249, WAN link base + 2; gwb: .3, .250, + 3.
		n := PairNode{Role: role, NS: p.NS(role),
			LAN:  netip.PrefixFrom(offset(p.LAN.Addr(), 2+i), p.LAN.Bits()),
			Sync: netip.PrefixFrom(offset(sync.Addr(), 1+i), sync.Bits())}
		for _, isp := range p.ISPs {
			var a netip.Addr
			if p.Reaches(i, isp) {
				a = offset(isp.Link.Addr(), 2+i)
			}
			n.WAN = append(n.WAN, a)
		}
		p.Nodes[i] = n
	}
	for _, isp := range p.ISPs {
		p.WANVIP = append(p.WANVIP, PairVIP(isp))
	}
	start := time.Now()
	if err := p.build(ctx); err != nil {
		if derr := p.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tear down: %w", derr))
		}
		return nil, fmt.Errorf("pair lab %s up: %w", spec.Name, err)
	}
	p.log.Info("pair lab up", "split", split, "isps", spec.ISPs, "lan_hosts", spec.LANHosts, "took", time.Since(start).Round(time.Millisecond))
	return p, nil
}

func offset(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

func (p *Pair) roles() []string {
	roles := []string{RoleCore}
	for _, isp := range p.ISPs {
		roles = append(roles, isp.Name)
	}
	roles = append(roles, RoleGWA, RoleGWB, RoleSwitch)
	for _, h := range p.Hosts {
		roles = append(roles, h.Name)
	}
	return roles
}

// build makes the namespaces, links, addresses and routes, and starts
// the servers in the core.
func (p *Pair) build(ctx context.Context) error {
	roles := p.roles()
	for _, r := range roles {
		if err := netns.Add(p.NS(r)); err != nil {
			return err
		}
		if err := setSysctls(p.NS(r), r != RoleSwitch && !strings.HasPrefix(r, "lan")); err != nil {
			return err
		}
	}
	b, err := p.newBuilder(roles...)
	if err != nil {
		return err
	}
	defer b.close()
	for _, step := range []func(*builder) error{p.links, p.addresses, (*builder).up, p.routes} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := step(b); err != nil {
			return err
		}
	}
	srv, err := startServers(ctx, p.NS(RoleCore), p.log)
	if err != nil {
		return err
	}
	p.srv = srv
	return nil
}

// bridge makes a bridge in role's namespace and returns it.
func bridge(b *builder, role, name string) (netlink.Link, error) {
	h := b.h[role]
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		return nil, fmt.Errorf("%s: bridge %s: %w", b.l.NS(role), name, err)
	}
	return h.LinkByName(name)
}

// port connects peerRole's peerName to the bridge br in role's namespace
// through a veth whose bridge end is called portName.
func port(b *builder, role string, br netlink.Link, portName, peerRole, peerName string) error {
	if err := b.veth(role, portName, peerRole, peerName); err != nil {
		return err
	}
	h := b.h[role]
	l, err := h.LinkByName(portName)
	if err != nil {
		return err
	}
	return h.LinkSetMaster(l, br)
}

func (p *Pair) links(b *builder) error {
	for _, isp := range p.ISPs {
		if err := b.veth(isp.Name, ISPUpIface, RoleCore, UplinkPeerIface(isp.Index)); err != nil {
			return err
		}
		// The ISP's handoff is a switch both gateways plug into: the
		// bridge carries the router's address.
		br, err := bridge(b, isp.Name, ISPDownIface)
		if err != nil {
			return err
		}
		for i, n := range p.Nodes {
			if !p.Reaches(i, isp) {
				continue
			}
			if err := port(b, isp.Name, br, n.Role, n.Role, isp.WAN); err != nil {
				return err
			}
		}
	}
	br, err := bridge(b, RoleSwitch, SwitchBridge)
	if err != nil {
		return err
	}
	for _, n := range p.Nodes {
		if err := port(b, RoleSwitch, br, n.Role, n.Role, PairLANIface); err != nil {
			return err
		}
	}
	for _, h := range p.Hosts {
		if err := port(b, RoleSwitch, br, h.Port, h.Name, h.Iface); err != nil {
			return err
		}
	}
	return b.veth(RoleGWA, SyncIface, RoleGWB, SyncIface)
}

func (p *Pair) addresses(b *builder) error {
	var srv []netip.Prefix
	for _, a := range p.Servers.All() {
		srv = append(srv, host(a))
	}
	if err := b.addr(RoleCore, CoreServerIface, srv...); err != nil {
		return err
	}
	for _, isp := range p.ISPs {
		if err := b.ispAddresses(isp); err != nil {
			return err
		}
		if err := b.addr(RoleCore, UplinkPeerIface(isp.Index), on(isp.UplinkPeer, isp.Uplink), on(isp.UplinkPeer6, isp.Uplink6)); err != nil {
			return err
		}
	}
	for _, n := range p.Nodes {
		for k, isp := range p.ISPs {
			if !n.WAN[k].IsValid() {
				continue
			}
			if err := b.addr(n.Role, isp.WAN, on(n.WAN[k], isp.Link)); err != nil {
				return err
			}
		}
		if err := b.addr(n.Role, PairLANIface, n.LAN); err != nil {
			return err
		}
		if err := b.addr(n.Role, SyncIface, n.Sync); err != nil {
			return err
		}
	}
	for _, h := range p.Hosts {
		if err := b.addr(h.Name, h.Iface, h.Addr); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pair) routes(b *builder) error {
	for _, h := range p.Hosts {
		if err := b.route(h.Name, h.Iface, default4, p.LANVIP.Addr(), 0); err != nil {
			return err
		}
	}
	for _, isp := range p.ISPs {
		for i, n := range p.Nodes {
			if !p.Reaches(i, isp) {
				continue
			}
			if err := b.route(n.Role, isp.WAN, default4, isp.Router, isp.Metric); err != nil {
				return err
			}
		}
		if err := b.route(isp.Name, ISPUpIface, default4, isp.UplinkPeer, 0); err != nil {
			return err
		}
		if err := b.route(RoleCore, UplinkPeerIface(isp.Index), isp.Link, isp.UplinkRouter, 0); err != nil {
			return err
		}
	}
	return nil
}

// PowerOff cuts a gateway as a power loss would: every process in its
// namespace frozen (SIGSTOP, which cannot be caught), every interface set
// down, then every process killed, so nothing the node would send on the
// way out (keepalived's priority-0 advert, a reaction to its links going
// down) leaves it.
func (p *Pair) PowerOff(role string) error {
	out, err := exec.Command("ip", "netns", "pids", p.NS(role)).Output()
	if err != nil {
		return fmt.Errorf("pids in %s: %w", p.NS(role), err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, _ := strconv.Atoi(f); pid > 0 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	var errs []error
	for _, pid := range pids {
		errs = append(errs, ignoreGone(syscall.Kill(pid, syscall.SIGSTOP)))
	}
	errs = append(errs, netns.Do(p.NS(role), func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				errs = append(errs, netlink.LinkSetDown(l))
			}
		}
		return nil
	}))
	for _, pid := range pids {
		errs = append(errs, ignoreGone(syscall.Kill(pid, syscall.SIGKILL)))
	}
	return errors.Join(errs...)
}

func ignoreGone(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// PowerOn boots a powered-off gateway again: the addresses it held but
// was not built with (virtual addresses a killed keepalived left behind)
// are gone, as after a reboot, its interfaces are up and its default
// routes back. The caller restarts its processes.
func (p *Pair) PowerOn(role string) error {
	var node *PairNode
	me := -1
	for i := range p.Nodes {
		if p.Nodes[i].Role == role {
			node, me = &p.Nodes[i], i
		}
	}
	if node == nil {
		return fmt.Errorf("pair lab: no gateway %q", role)
	}
	keep := map[netip.Addr]bool{node.LAN.Addr(): true, node.Sync.Addr(): true}
	for _, a := range node.WAN {
		keep[a] = true
	}
	err := netns.Do(p.NS(role), func() error {
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			if !ip.Unmap().IsLoopback() && !keep[ip.Unmap()] {
				l, err := netlink.LinkByIndex(a.LinkIndex)
				if err != nil {
					return err
				}
				if err := netlink.AddrDel(l, &a); err != nil {
					return fmt.Errorf("remove %s: %w", ip, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b, err := p.newBuilder(role)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.up(); err != nil {
		return err
	}
	for _, isp := range p.ISPs {
		if !p.Reaches(me, isp) {
			continue
		}
		if err := b.route(role, isp.WAN, default4, isp.Router, isp.Metric); err != nil {
			return err
		}
	}
	return nil
}

// SetLinkUp sets one interface of role's namespace up or down.
func (p *Pair) SetLinkUp(role, iface string, up bool) error {
	return netns.Do(p.NS(role), func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	})
}

// Holds reports whether role's namespace has address a on iface.
func (p *Pair) Holds(role, iface string, a netip.Addr) (bool, error) {
	var has bool
	err := netns.Do(p.NS(role), func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap() == a {
				has = true
			}
		}
		return nil
	})
	return has, err
}
