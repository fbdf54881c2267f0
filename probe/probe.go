// Package probe sends health probes through one uplink and times them.
//
// A Prober is bound to its link: every socket it opens is tied to the
// link's interface (SO_BINDTODEVICE), carries the link's firewall mark
// (SO_MARK) when one is given, and is bound to the link's source address
// when it is known, so a probe can never leave through another link and
// a reply can only be accepted from the link it was sent on.
//
// Probe types:
//   - icmp: ICMP or ICMPv6 echo over a raw socket (needs CAP_NET_RAW). Each
//     prober has its own identifier and a random cookie in the payload;
//     replies are matched by identifier, sequence number, cookie and
//     source address, everything else is ignored. Destination-unreachable
//     and time-exceeded errors quoting one of our requests fail that probe
//     at once.
//   - tcp: a TCP connect. The SYN-ACK proves the path; so does a RST
//     ("connection refused"): the target's host answered, through this
//     link, which is all path probing asks. The connection is reset, not
//     closed, so no TIME_WAIT state accumulates.
//   - http, https: GET Path with header Host on a fresh connection; the
//     probe succeeds when the status is ExpectStatus. Certificates are not
//     verified: the probe proves the path, not the server's identity.
//   - dns: one query (Query, type NS) over UDP; an answer with RCODE
//     NOERROR or NXDOMAIN proves the path.
//
// Host names (http, https and tcp targets) are resolved through the
// link's own DNS servers (Binding.Resolver, see Resolver), never the
// system's: a resolution failure is a probe failure, a *ResolveError.
//
// Probers are safe for concurrent use: probes of one target may overlap
// when the timeout is longer than the probing interval.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
)

// Binding ties a prober to its link.
type Binding struct {
	// Interface is the link's kernel interface (SO_BINDTODEVICE). Empty
	// means unbound, for tests on loopback only.
	Interface string
	// Mark is the firewall mark set on every probe socket (SO_MARK), 0 for
	// none.
	Mark uint32
	// Source4 and Source6 are the link's own addresses; when valid, probe
	// sockets of that family are bound to them.
	Source4, Source6 netip.Addr
	// Resolver resolves host-name targets through the link; nil refuses
	// host names. One per link, shared by its probers (it caches).
	Resolver *Resolver
}

// source returns the address to bind for a destination of dst's family
// (invalid when unknown).
func (b Binding) source(dst netip.Addr) netip.Addr {
	if dst.Unmap().Is4() {
		return b.Source4
	}
	return b.Source6
}

// Prober probes one target through one link.
type Prober interface {
	// Probe sends one probe and waits at most timeout (or until ctx is
	// done) for its answer. It returns the round-trip time on success.
	Probe(ctx context.Context, timeout time.Duration) (rtt time.Duration, err error)
	// Target is the probed target as configured.
	Target() string
	// Type is the probe type: icmp, tcp, http, https or dns.
	Type() string
	// Close releases the prober's sockets; pending probes fail.
	Close() error
}

// ErrTimeout is returned when no answer came in time.
var ErrTimeout = errors.New("timeout")

// ErrClosed is returned by Probe after Close.
var ErrClosed = errors.New("prober closed")

// New returns a prober of p's type bound to b. Defaults are applied to
// unset fields of p (type icmp, tcp port 80, http status 200, dns query
// "."), so New also works on a config that was not loaded from a file.
func New(p config.Probe, b Binding) (Prober, error) {
	typ := p.Type
	if typ == "" {
		typ = config.ProbeICMP
	}
	switch typ {
	case config.ProbeICMP:
		return newICMP(p.Target, b)
	case config.ProbeTCP:
		return newTCP(p.Target, b)
	case config.ProbeHTTP, config.ProbeHTTPS:
		return newHTTP(p, typ == config.ProbeHTTPS, b)
	case config.ProbeDNS:
		return newDNS(p, b)
	}
	return nil, fmt.Errorf("probe %q: unknown type %q", p.Target, typ)
}

// Check reports whether p is a probe New can make, without opening any
// socket.
func Check(p config.Probe) error {
	switch p.Type {
	case "", config.ProbeICMP:
		if _, err := netip.ParseAddr(p.Target); err != nil {
			return fmt.Errorf("icmp probe: target %q is not an IP address", p.Target)
		}
		return nil
	case config.ProbeTCP:
		_, err := newTCP(p.Target, Binding{})
		return err
	case config.ProbeHTTP, config.ProbeHTTPS:
		_, err := newHTTP(p, p.Type == config.ProbeHTTPS, Binding{})
		return err
	case config.ProbeDNS:
		_, err := newDNS(p, Binding{})
		return err
	}
	return fmt.Errorf("probe %q: unknown type %q", p.Target, p.Type)
}

// parseHostPort splits "host:port", "[v6]:port", "v6", "host" with a
// default port.
func parseHostPort(s string, defPort int) (host string, port int, err error) {
	if s == "" {
		return "", 0, errors.New("empty target")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), defPort, nil
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.String(), defPort, nil
		}
	}
	h, ps, err := net.SplitHostPort(s)
	if err != nil {
		// "host" without a port.
		if len(s) > 0 && s[0] != '[' {
			return s, defPort, nil
		}
		return "", 0, fmt.Errorf("bad target %q: %w", s, err)
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in target %q", s)
	}
	if h == "" {
		return "", 0, fmt.Errorf("bad target %q: empty host", s)
	}
	return h, n, nil
}

// dialer returns a net.Dialer bound to the link for destination dst
// (invalid dst: no source binding).
func (b Binding) dialer(dst netip.Addr, tcp bool) *net.Dialer {
	d := &net.Dialer{Control: b.control}
	if src := b.source(dst); src.IsValid() && dst.IsValid() {
		if tcp {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		} else {
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
	}
	return d
}

// control sets the link's socket options before bind or connect.
func (b Binding) control(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = b.setsockopt(int(fd)) })
	if err != nil {
		return err
	}
	return serr
}

func (b Binding) setsockopt(fd int) error {
	if b.Interface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, b.Interface); err != nil {
			return fmt.Errorf("bind to device %s: %w", b.Interface, err)
		}
	}
	if b.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(b.Mark)); err != nil {
			return fmt.Errorf("set mark %#x: %w", b.Mark, err)
		}
	}
	return nil
}

// resolve returns host as an address, resolving a name through the
// link's own resolvers (b.Resolver), whose queries are bound like the
// probes. Its errors are *ResolveError, already classified.
func (b Binding) resolve(ctx context.Context, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	if b.Resolver == nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: no resolvers given for the link", host)
	}
	return b.Resolver.Lookup(ctx, b, host)
}

// deadline returns the earlier of now+timeout and ctx's deadline.
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// classify turns network errors into short reasons for status and logs.
func classify(err error, ctx context.Context) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) || errors.Is(err, unix.ETIMEDOUT) {
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
