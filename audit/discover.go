package audit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
)

// DiscoverOptions bound active discovery.
type DiscoverOptions struct {
	// MaxTTL is the highest TTL probed (default and maximum 16).
	MaxTTL int
	// Timeout is how long one probe waits for its answer (default 500ms).
	Timeout time.Duration
	// Method is "icmp", "udp" or "both" (default): ICMP echo first, a UDP
	// datagram to a high port when the echo got no answer.
	Method string
	// Attempts is how many times a silent hop is probed (default 2): the
	// first packets toward a new neighbour can be lost while it is being
	// resolved, and routers rate-limit their ICMP errors.
	Attempts int
	// Targets, when set, replace every link's probe targets.
	Targets []netip.Addr
}

// Hop is one router (or the target) on a path.
type Hop struct {
	TTL int `json:"ttl"`
	// Addr answered the probe with this TTL; invalid when nothing did.
	Addr netip.Addr `json:"addr,omitzero"`
	// Forward is the router's address on its side toward the target, as
	// it wrote it into the IP Record Route option; invalid when unknown.
	Forward netip.Addr `json:"forward,omitzero"`
	// Method is icmp or udp: the probe that got the answer.
	Method string        `json:"method,omitempty"`
	RTT    time.Duration `json:"rtt_ns,omitempty"`
	// Target is set on the answer of the target itself.
	Target bool `json:"target,omitempty"`
}

// Path is what one link's traffic to one target crosses.
type Path struct {
	Link      string     `json:"link"`
	Interface string     `json:"interface"`
	Source    netip.Addr `json:"source,omitzero"`
	Target    netip.Addr `json:"target"`
	Hops      []Hop      `json:"hops"`
	Reached   bool       `json:"reached"`
	Error     string     `json:"error,omitempty"`
}

// SharedHop is a router found on the paths of several links.
type SharedHop struct {
	// Addrs are the router's addresses seen (aliases).
	Addrs []netip.Addr `json:"addrs"`
	// Links cross it.
	Links []string `json:"links"`
}

// Discovery is the result of active discovery.
type Discovery struct {
	Paths  []Path      `json:"paths"`
	Shared []SharedHop `json:"shared"`
}

// Discover traces, through every link of c, the path to each of the
// link's probe targets (IPv4 and IPv6). Every socket is bound to the
// link's interface and source address, so it is run where the daemon
// runs: in the gateway's network namespace, as root. All sockets are
// opened by the calling goroutine, so that netns.Do can wrap it.
func Discover(ctx context.Context, c *config.Config, opt DiscoverOptions) (*Discovery, error) {
	if opt.MaxTTL <= 0 || opt.MaxTTL > 16 {
		opt.MaxTTL = 16
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 500 * time.Millisecond
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 2
	}
	switch opt.Method {
	case "":
		opt.Method = "both"
	case "icmp", "udp", "both":
	default:
		return nil, fmt.Errorf("discover: unknown method %q: want icmp, udp or both", opt.Method)
	}
	d := &Discovery{Paths: []Path{}, Shared: []SharedHop{}}
	for _, l := range c.Links {
		var dsts []netip.Addr
		if len(opt.Targets) > 0 {
			dsts = opt.Targets
		} else {
			for _, p := range l.Probes {
				if a, ok := probeHost(p); ok && !slices.Contains(dsts, a) {
					dsts = append(dsts, a)
				}
			}
		}
		tracers := map[bool]*tracer{}
		errs := map[bool]error{}
		for _, dst := range dsts {
			v6 := dst.Is6()
			tr, err := tracers[v6], errs[v6]
			if tr == nil && err == nil {
				var src netip.Addr
				src, err = linkSource(l, v6)
				if err == nil {
					tr = &tracer{iface: l.Interface, src: src, v6: v6, opt: opt}
					if err = tr.open(ctx); err != nil {
						tr = nil
					}
				}
				if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
					closeAll(tracers)
					return nil, fmt.Errorf("discover needs root (CAP_NET_RAW): %w", err)
				}
				tracers[v6], errs[v6] = tr, err
			}
			p := Path{Link: l.Name, Interface: l.Interface, Target: dst, Hops: []Hop{}}
			if err != nil {
				p.Error = err.Error()
			} else {
				p.Source = tr.src
				if terr := tr.trace(ctx, &p); terr != nil {
					p.Error = terr.Error()
				}
			}
			d.Paths = append(d.Paths, p)
			if ctx.Err() != nil {
				break
			}
		}
		closeAll(tracers)
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
	}
	if len(d.Paths) > 0 && !slices.ContainsFunc(d.Paths, func(p Path) bool { return p.Error == "" }) {
		return d, fmt.Errorf("no link could be traced: %s", d.Paths[0].Error)
	}
	d.Shared = sharedHops(d.Paths)
	return d, nil
}

func closeAll(ts map[bool]*tracer) {
	for _, t := range ts {
		if t != nil {
			t.close()
		}
	}
}

// linkSource returns the link's address of a family: configured, or the
// first global one of its interface.
func linkSource(l config.Link, v6 bool) (netip.Addr, error) {
	if !v6 && l.Address4.IsValid() {
		return l.Address4, nil
	}
	if v6 && l.Address6.IsValid() {
		return l.Address6, nil
	}
	ifc, err := net.InterfaceByName(l.Interface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("link %s: %w", l.Name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("link %s: addresses of %s: %w", l.Name, l.Interface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip, ok := netip.AddrFromSlice(n.IP)
			ip = ip.Unmap()
			if ok && ip.Is6() == v6 && ip.IsGlobalUnicast() {
				return ip, nil
			}
		}
	}
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	return netip.Addr{}, fmt.Errorf("link %s: no %s address on %s", l.Name, fam, l.Interface)
}

const udpBasePort = 33434

type tracer struct {
	iface string
	src   netip.Addr
	v6    bool
	opt   DiscoverOptions
	raw   *ipv4.RawConn    // IPv4: we write the header (TTL, options)
	raw6  *ipv6.PacketConn // IPv6: hop limit by socket option
	udp   net.PacketConn
	uport int
	id    uint16
	seq   uint16
}

func bindTo(iface string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
		})
		return errors.Join(err, serr)
	}
}

func (t *tracer) open(ctx context.Context) error {
	var b [2]byte
	_, _ = rand.Read(b[:])
	t.id = binary.BigEndian.Uint16(b[:])
	lc := net.ListenConfig{Control: bindTo(t.iface)}
	network, udp := "ip4:icmp", "udp4"
	if t.v6 {
		network, udp = "ip6:ipv6-icmp", "udp6"
	}
	pc, err := lc.ListenPacket(ctx, network, t.src.String())
	if err != nil {
		return fmt.Errorf("raw icmp socket on %s: %w", t.iface, err)
	}
	if t.v6 {
		t.raw6 = ipv6.NewPacketConn(pc)
	} else if t.raw, err = ipv4.NewRawConn(pc); err != nil {
		pc.Close()
		return fmt.Errorf("raw icmp socket on %s: %w", t.iface, err)
	}
	if t.opt.Method != "icmp" {
		t.udp, err = lc.ListenPacket(ctx, udp, netip.AddrPortFrom(t.src, 0).String())
		if err != nil {
			t.close()
			return fmt.Errorf("udp socket on %s: %w", t.iface, err)
		}
		t.uport = t.udp.LocalAddr().(*net.UDPAddr).Port
	}
	return nil
}

func (t *tracer) close() {
	if t.raw != nil {
		t.raw.Close()
	}
	if t.raw6 != nil {
		t.raw6.Close()
	}
	if t.udp != nil {
		t.udp.Close()
	}
}

// answer is what came back for one probe.
type answer struct {
	from    netip.Addr
	rtt     time.Duration
	final   bool // the target answered (echo reply, port unreachable)
	unreach bool // a router said the target is unreachable
	rr      []netip.Addr
}

// recordRoute is the IP Record Route option with room for 9 addresses,
// padded with a NOP to 40 bytes.
func recordRoute() []byte {
	o := make([]byte, 40)
	o[0], o[1], o[2] = 7, 39, 4
	o[39] = 1
	return o
}

func (t *tracer) trace(ctx context.Context, p *Path) error {
	for ttl := 1; ttl <= t.opt.MaxTTL; ttl++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := Hop{TTL: ttl}
		var a answer
		var err error
		for try := 0; try < t.opt.Attempts && !a.from.IsValid(); try++ {
			if t.opt.Method != "udp" {
				a, err = t.probeICMP(p.Target, ttl, nil)
				if err != nil {
					return err
				}
				h.Method = "icmp"
			}
			if !a.from.IsValid() && t.opt.Method != "icmp" {
				a, err = t.probeUDP(p.Target, ttl)
				if err != nil {
					return err
				}
				h.Method = "udp"
			}
		}
		if !a.from.IsValid() {
			h.Method = ""
		}
		h.Addr, h.RTT, h.Target = a.from, a.rtt, a.final
		p.Hops = append(p.Hops, h)
		if a.final {
			p.Reached = true
			break
		}
		if a.unreach {
			break
		}
	}
	if !p.Reached || t.opt.Method == "udp" || t.v6 {
		return nil // IPv6 has no Record Route
	}
	// One echo with Record Route: the routers write their forward-side
	// addresses, which tell which hops of different links are one router.
	a, err := t.probeICMP(p.Target, t.opt.MaxTTL, recordRoute())
	if err != nil || !a.final || len(a.rr) == 0 {
		return nil
	}
	// We write the IP header ourselves, so the first address is the
	// first router's, unless a kernel recorded ours.
	rr := a.rr
	if rr[0] == t.src {
		rr = rr[1:]
	}
	end := slices.Index(rr, p.Target)
	if end < 0 {
		return nil
	}
	fwd := rr[:end]
	if len(fwd) != len(p.Hops)-1 {
		return nil // a router that does not record: cannot align
	}
	for i, f := range fwd {
		p.Hops[i].Forward = f
	}
	return nil
}

func (t *tracer) probeICMP(dst netip.Addr, ttl int, opts []byte) (answer, error) {
	t.seq++
	seq := t.seq
	payload := make([]byte, 16)
	copy(payload, "multihome-audit")
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(t.id), Seq: int(seq), Data: payload}}
	if t.v6 {
		msg.Type = ipv6.ICMPTypeEchoRequest // the kernel fills in the checksum
	}
	b, err := msg.Marshal(nil)
	if err != nil {
		return answer{}, err
	}
	start := time.Now()
	if t.v6 {
		if err := t.raw6.SetHopLimit(ttl); err != nil {
			return answer{}, fmt.Errorf("hop limit: %w", err)
		}
		if _, err := t.raw6.WriteTo(b, nil, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return answer{}, fmt.Errorf("send icmpv6 via %s: %w", t.iface, err)
		}
	} else {
		h := &ipv4.Header{
			Version: ipv4.Version, Len: ipv4.HeaderLen + len(opts), TotalLen: ipv4.HeaderLen + len(opts) + len(b),
			TTL: ttl, Protocol: 1, Src: t.src.AsSlice(), Dst: dst.AsSlice(), Options: opts,
		}
		if err := t.raw.WriteTo(h, b, nil); err != nil {
			return answer{}, fmt.Errorf("send icmp via %s: %w", t.iface, err)
		}
	}
	echoType := byte(8)
	if t.v6 {
		echoType = 128
	}
	return t.wait(start, dst, func(proto int, q []byte) bool {
		return (proto == 1 || proto == 58) && len(q) >= 8 && q[0] == echoType &&
			binary.BigEndian.Uint16(q[4:6]) == t.id && binary.BigEndian.Uint16(q[6:8]) == seq
	}, func(e *icmp.Echo) bool { return e.ID == int(t.id) && e.Seq == int(seq) })
}

func (t *tracer) probeUDP(dst netip.Addr, ttl int) (answer, error) {
	t.seq++
	port := udpBasePort + int(t.seq%512)
	var err error
	if t.v6 {
		err = ipv6.NewPacketConn(t.udp).SetHopLimit(ttl)
	} else {
		err = ipv4.NewPacketConn(t.udp).SetTTL(ttl)
	}
	if err != nil {
		return answer{}, fmt.Errorf("udp ttl: %w", err)
	}
	start := time.Now()
	if _, err := t.udp.WriteTo([]byte("multihome-audit"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port)))); err != nil {
		return answer{}, fmt.Errorf("send udp via %s: %w", t.iface, err)
	}
	return t.wait(start, dst, func(proto int, q []byte) bool {
		return proto == 17 && len(q) >= 4 &&
			int(binary.BigEndian.Uint16(q[0:2])) == t.uport && int(binary.BigEndian.Uint16(q[2:4])) == port
	}, nil)
}

// wait reads ICMP until the answer matching our probe arrives or the
// timeout passes. quoted matches the transport header quoted in an ICMP
// error; echo matches an echo reply.
func (t *tracer) wait(start time.Time, dst netip.Addr, quoted func(proto int, q []byte) bool, echo func(*icmp.Echo) bool) (answer, error) {
	deadline := start.Add(t.opt.Timeout)
	buf := make([]byte, 1500)
	for {
		from, p, opts, err := t.read(buf, deadline)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return answer{}, nil
			}
			return answer{}, fmt.Errorf("read icmp on %s: %w", t.iface, err)
		}
		rtt := time.Since(start)
		proto := 1
		if t.v6 {
			proto = 58
		}
		m, err := icmp.ParseMessage(proto, p)
		if err != nil {
			continue
		}
		var data []byte
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) && echo != nil && from == dst && echo(body) {
				return answer{from: from, rtt: rtt, final: true, rr: recordedRoute(opts)}, nil
			}
			continue
		case *icmp.TimeExceeded:
			data = body.Data
		case *icmp.DstUnreach:
			data = body.Data
		default:
			continue
		}
		qdst, qproto, transport, ok := quotedHeader(data, t.v6)
		if !ok || qdst != dst || !quoted(qproto, transport) {
			continue
		}
		a := answer{from: from, rtt: rtt}
		if m.Type == ipv4.ICMPTypeDestinationUnreachable || m.Type == ipv6.ICMPTypeDestinationUnreachable {
			if from == dst {
				a.final = true
			} else {
				a.unreach = true
			}
		}
		return a, nil
	}
}

// read returns the next ICMP message, its sender and, for IPv4, the IP
// options of its header.
func (t *tracer) read(buf []byte, deadline time.Time) (from netip.Addr, p, opts []byte, err error) {
	if t.v6 {
		if err := t.raw6.SetReadDeadline(deadline); err != nil {
			return from, nil, nil, err
		}
		n, _, src, err := t.raw6.ReadFrom(buf)
		if err != nil {
			return from, nil, nil, err
		}
		if ia, ok := src.(*net.IPAddr); ok {
			from, _ = netip.AddrFromSlice(ia.IP)
		}
		return from.Unmap(), buf[:n], nil, nil
	}
	if err := t.raw.SetReadDeadline(deadline); err != nil {
		return from, nil, nil, err
	}
	h, p, _, err := t.raw.ReadFrom(buf)
	if err != nil {
		return from, nil, nil, err
	}
	from, _ = netip.AddrFromSlice(h.Src)
	return from.Unmap(), p, h.Options, nil
}

// quotedHeader parses the IP header an ICMP error quotes: its destination,
// protocol and the transport header after it.
func quotedHeader(data []byte, v6 bool) (dst netip.Addr, proto int, transport []byte, ok bool) {
	if v6 {
		if len(data) < 40 {
			return dst, 0, nil, false
		}
		return netip.AddrFrom16([16]byte(data[24:40])), int(data[6]), data[40:], true
	}
	q, err := ipv4.ParseHeader(data)
	if err != nil || q.Len > len(data) {
		return dst, 0, nil, false
	}
	qdst, _ := netip.AddrFromSlice(q.Dst)
	return qdst.Unmap(), q.Protocol, data[q.Len:], true
}

// recordedRoute returns the addresses of a Record Route option.
func recordedRoute(opts []byte) []netip.Addr {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return nil
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return nil
		}
		o := opts[i : i+int(opts[i+1])]
		if o[0] == 7 && len(o) >= 3 {
			var out []netip.Addr
			end := min(int(o[2])-1, len(o))
			for j := 3; j+4 <= end; j += 4 {
				out = append(out, netip.AddrFrom4([4]byte(o[j:j+4])))
			}
			return out
		}
		i += len(o)
	}
	return nil
}

// targetNet reports whether a hop belongs to the target's own network: the
// target itself, or an address in its /24 (IPv4) or /48 (IPv6). Every path
// to a target ends there, whatever link it took, so that is not shared
// infrastructure of the site.
func targetNet(hop, target netip.Addr) bool {
	if hop == target {
		return true
	}
	bits := 24
	if target.Is6() {
		bits = 48
	}
	p, err := target.Prefix(bits)
	return err == nil && p.Contains(hop)
}

// sharedHops finds routers on the paths of several links. A router is
// known by every address it answered from and every address it recorded
// (Record Route): addresses seen at one hop are aliases of one router.
func sharedHops(paths []Path) []SharedHop {
	parent := map[netip.Addr]netip.Addr{}
	var find func(a netip.Addr) netip.Addr
	find = func(a netip.Addr) netip.Addr {
		if p, ok := parent[a]; ok && p != a {
			r := find(p)
			parent[a] = r
			return r
		}
		parent[a] = a
		return a
	}
	union := func(a, b netip.Addr) { parent[find(a)] = find(b) }
	eligible := func(p Path, h Hop) bool {
		return h.Addr.IsValid() && !h.Target && !targetNet(h.Addr, p.Target)
	}
	for _, p := range paths {
		for _, h := range p.Hops {
			if !eligible(p, h) {
				continue
			}
			find(h.Addr)
			if h.Forward.IsValid() {
				union(h.Forward, h.Addr)
			}
		}
	}
	type router struct {
		addrs []netip.Addr
		links []string
	}
	routers := map[netip.Addr]*router{}
	var order []netip.Addr
	for _, p := range paths {
		for _, h := range p.Hops {
			if !eligible(p, h) {
				continue
			}
			r := find(h.Addr)
			if routers[r] == nil {
				routers[r] = &router{}
				order = append(order, r)
			}
			for _, a := range []netip.Addr{h.Addr, h.Forward} {
				if a.IsValid() && !slices.Contains(routers[r].addrs, a) {
					routers[r].addrs = append(routers[r].addrs, a)
				}
			}
			if !slices.Contains(routers[r].links, p.Link) {
				routers[r].links = append(routers[r].links, p.Link)
			}
		}
	}
	out := []SharedHop{}
	for _, r := range order {
		rt := routers[r]
		if len(rt.links) < 2 {
			continue
		}
		slices.SortFunc(rt.addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		slices.Sort(rt.links)
		out = append(out, SharedHop{Addrs: rt.addrs, Links: rt.links})
	}
	return out
}

// Findings turns the discovery into findings: shared routers, links that
// do not reach their targets or leave by another next hop.
func (d *Discovery) Findings(c *config.Config) []Finding {
	var fs []Finding
	fs = append(fs, d.sharedHopFindings()...)
	fs = append(fs, d.pathFindings(c)...)
	return fs
}

// sharedHopFindings report routers that several links cross, every link
// (of those traced) a single point of failure.
func (d *Discovery) sharedHopFindings() []Finding {
	var fs []Finding
	links := map[string]bool{}
	for _, p := range d.Paths {
		if p.Error == "" {
			links[p.Link] = true
		}
	}
	for _, s := range d.Shared {
		addrs := make([]string, len(s.Addrs))
		for i, a := range s.Addrs {
			addrs[i] = a.String()
		}
		f := Finding{
			Check: "shared-hop", Severity: Medium,
			Summary:        fmt.Sprintf("links %s all cross the router %s: shared infrastructure beyond the gateways", strings.Join(s.Links, ", "), strings.Join(addrs, " = ")),
			Recommendation: "ask the providers about their upstream paths; choose one whose network does not join the others' before the Internet",
			Elements:       addrs,
		}
		if len(s.Links) == len(links) && len(links) > 1 {
			f.Severity = High
			f.Summary = fmt.Sprintf("every link (%s) crosses the router %s: a single point of failure beyond the gateways", strings.Join(s.Links, ", "), strings.Join(addrs, " = "))
		}
		fs = append(fs, f)
	}
	return fs
}

// pathFindings report links that cannot be traced, do not reach their
// targets, leave by another next hop than their gateway, or cross another
// link's gateway.
func (d *Discovery) pathFindings(c *config.Config) []Finding {
	var fs []Finding
	gateways := map[netip.Addr]string{}
	for _, l := range c.Links {
		for _, g := range []netip.Addr{l.Gateway4, l.Gateway6} {
			if g.IsValid() {
				gateways[g] = l.Name
			}
		}
	}
	failed := map[string]bool{}
	for _, p := range d.Paths {
		switch {
		case p.Error != "":
			if failed[p.Link] {
				continue // one finding per link
			}
			failed[p.Link] = true
			fs = append(fs, Finding{
				Check: "discover-error", Severity: Medium,
				Summary:        fmt.Sprintf("cannot trace link %s to %s: %s", p.Link, p.Target, p.Error),
				Recommendation: "run the audit as root in the gateway's network namespace, with the links up",
				Elements:       []string{idLink(p.Link)},
			})
			continue
		case !p.Reached:
			fs = append(fs, Finding{
				Check: "discover-unreachable", Severity: Medium,
				Summary:        fmt.Sprintf("link %s does not reach %s (%s)", p.Link, p.Target, lastAnswer(p)),
				Recommendation: "check the link's routing, or pick probe targets that answer ICMP echo or UDP",
				Elements:       []string{idLink(p.Link), p.Target.String()},
			})
		}
		fs = append(fs, pathHopFindings(c, p, gateways)...)
	}
	return fs
}

// pathHopFindings report a path that leaves by another next hop than its
// link's gateway, or crosses another link's gateway (gateway → link).
func pathHopFindings(c *config.Config, p Path, gateways map[netip.Addr]string) []Finding {
	var fs []Finding
	var gw netip.Addr
	if l := c.LinkByName(p.Link); l != nil {
		gw = l.Gateway4
		if p.Target.Is6() {
			gw = l.Gateway6
		}
	}
	if len(p.Hops) > 0 && p.Hops[0].Addr.IsValid() && !p.Hops[0].Target && gw.IsValid() && p.Hops[0].Addr != gw {
		fs = append(fs, Finding{
			Check: "discover-first-hop", Severity: Medium,
			Summary:        fmt.Sprintf("traffic bound to link %s leaves through %s, not the link's gateway %s", p.Link, p.Hops[0].Addr, gw),
			Recommendation: "check the link's gateway4 and the routes of its interface",
			Elements:       []string{idLink(p.Link)},
		})
	}
	for _, h := range p.Hops {
		if other, ok := gateways[h.Addr]; ok && other != p.Link {
			fs = append(fs, Finding{
				Check: "discover-crosses-link", Severity: High,
				Summary:        fmt.Sprintf("traffic of link %s to %s crosses %s, the gateway of link %s: the links are not independent", p.Link, p.Target, h.Addr, other),
				Recommendation: "fix the routing so that each link reaches the Internet on its own",
				Elements:       []string{idLink(p.Link), idLink(other)},
			})
		}
	}
	return fs
}

func lastAnswer(p Path) string {
	for i := len(p.Hops) - 1; i >= 0; i-- {
		if p.Hops[i].Addr.IsValid() {
			return fmt.Sprintf("last answer from %s at TTL %d", p.Hops[i].Addr, p.Hops[i].TTL)
		}
	}
	return "no answer at all"
}

// AddDiscovery attaches a discovery to the report: its findings, and each
// shared router as a graph node joined to the links that cross it (a
// single point of failure when every link does).
func (r *Report) AddDiscovery(c *config.Config, d *Discovery) {
	r.Discovery = d
	r.Add(d.Findings(c)...)
	links := map[string]bool{}
	for _, p := range d.Paths {
		if p.Error == "" {
			links[p.Link] = true
		}
	}
	for _, s := range d.Shared {
		if len(s.Addrs) == 0 {
			continue
		}
		id := idRouter(s.Addrs[0].String())
		r.Graph.addNode(id, KindRouter, s.Addrs[0].String(), "shared router")
		for _, l := range s.Links {
			r.Graph.addEdge(idLink(l), id, EdgeDiscovered)
		}
		r.Graph.addEdge(id, idInternet, EdgeDiscovered)
		if len(s.Links) == len(links) && len(links) > 1 {
			r.Graph.Node(id).SPOF = true
			r.SPOFs = append(r.SPOFs, id)
		}
	}
}
