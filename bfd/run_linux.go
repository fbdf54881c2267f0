package bfd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Port is the single-hop BFD control port (RFC 5881).
const Port = 3784

// Peer is one single-hop session over an interface.
type Peer struct {
	// Interface the session is bound to (SO_BINDTODEVICE).
	Interface string
	// Local is our address (optional: the kernel picks); Remote the
	// neighbour's, IPv4 or IPv6 (a link-local one may carry the
	// interface as its zone).
	Local, Remote netip.Addr
	Config
}

// Event is a session state change.
type Event struct {
	Time      time.Time
	Interface string
	// Remote is Peer.Remote as given.
	Remote   netip.Addr
	From, To State
	// Diag is ours on the way down (e.g. detection time expired), or
	// "neighbor signaled session down".
	Diag Diag
	// RemoteDiag is the diagnostic the neighbour last sent, RemoteState
	// the state it last reported.
	RemoteDiag  Diag
	RemoteState State
	// UpFor is, on the way out of Up, how long the session had been Up
	// (set by Manager).
	UpFor time.Duration
	// Err is set (by Manager) when the session went down because its
	// runner failed, not by the protocol.
	Err error
}

func control(device string, opts func(fd int) error) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return
			}
			if device != "" {
				if err = unix.BindToDevice(int(fd), device); err != nil {
					err = fmt.Errorf("bind to %s: %w", device, err)
					return
				}
			}
			err = opts(int(fd))
		})
		if cerr != nil {
			return cerr
		}
		return err
	}
}

// Run runs the session until ctx ends, calling notify (from Run's
// goroutine) on every state change. On return it sends AdminDown so the
// neighbour does not wait for its detection time.
//
// IPv4 and IPv6 peers are supported (RFC 5881): packets are sent with TTL
// or hop limit 255 from a source port in 49152–65535 and anything
// received with another TTL or hop limit is dropped. A link-local IPv6
// peer is reached through p.Interface (its zone, when it has one, must
// name the same interface).
func Run(ctx context.Context, p Peer, notify func(Event), log *slog.Logger) error {
	ep, err := endpointOf(p)
	if err != nil {
		return err
	}
	ns, err := netnsID()
	if err != nil {
		return err
	}
	pkts, unsubscribe, err := subscribe(rxKey{ns: ns, dev: p.Interface, v6: ep.v6}, ep.remote, func() (*net.UDPConn, error) {
		lc := net.ListenConfig{Control: control(p.Interface, ep.rxOpts)}
		c, err := lc.ListenPacket(ctx, ep.network, net.JoinHostPort(ep.wildcard, fmt.Sprint(Port)))
		if err != nil {
			return nil, fmt.Errorf("bfd listen: %w", err)
		}
		return c.(*net.UDPConn), nil
	}, log)
	if err != nil {
		return err
	}
	defer unsubscribe()
	tx, err := ep.openTx(ctx, p)
	if err != nil {
		return err
	}
	defer tx.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ep.remote.WithZone(ep.zone), Port))
	return runSession(ctx, p, pkts, tx, dst, notify, log)
}

// endpoint is how a peer is reached: its address without zone, the zone
// a link-local peer needs, the family and the socket options.
type endpoint struct {
	remote            netip.Addr
	zone              string
	v6                bool
	network, wildcard string
	rxOpts, txOpts    func(fd int) error
}

// endpointOf checks p's addresses (families, link-local zones) and
// returns how to reach it.
func endpointOf(p Peer) (endpoint, error) {
	if !p.Remote.IsValid() {
		return endpoint{}, errors.New("bfd: no peer address")
	}
	ep := endpoint{remote: p.Remote.Unmap().WithZone("")}
	ep.v6 = ep.remote.Is6()
	if p.Local.IsValid() && p.Local.Unmap().Is6() != ep.v6 {
		return endpoint{}, fmt.Errorf("bfd: local address %s is not of the peer's family (%s)", p.Local, p.Remote)
	}
	if ep.v6 && ep.remote.IsLinkLocalUnicast() {
		ep.zone = p.Remote.Zone()
		if ep.zone == "" {
			ep.zone = p.Interface
		}
		if ep.zone == "" {
			return endpoint{}, fmt.Errorf("bfd: link-local peer %s needs an interface", p.Remote)
		}
		if p.Interface != "" && ep.zone != p.Interface {
			return endpoint{}, fmt.Errorf("bfd: link-local peer %s is not on interface %s", p.Remote, p.Interface)
		}
	}
	ep.network, ep.wildcard = "udp4", "0.0.0.0"
	ep.rxOpts = func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1) }
	ep.txOpts = func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 255) }
	if ep.v6 {
		ep.network, ep.wildcard = "udp6", "::"
		ep.rxOpts = func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
				return err
			}
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
		}
		ep.txOpts = func(fd int) error {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
				return err
			}
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255)
		}
	}
	return ep, nil
}

// openTx opens the session's sending socket: bound to the interface,
// from p.Local (or any address), on a random source port in
// 49152–65535 (RFC 5881), TTL or hop limit 255.
func (ep endpoint) openTx(ctx context.Context, p Peer) (*net.UDPConn, error) {
	txl := net.ListenConfig{Control: control(p.Interface, ep.txOpts)}
	src := ep.wildcard
	if p.Local.IsValid() {
		l := p.Local.Unmap()
		if l.Is6() && l.IsLinkLocalUnicast() {
			l = l.WithZone(ep.zone)
			if ep.zone == "" {
				l = l.WithZone(p.Interface)
			}
		} else {
			l = l.WithZone("")
		}
		src = l.String()
	}
	var lerr error
	for range 32 {
		c, err := txl.ListenPacket(ctx, ep.network, net.JoinHostPort(src, fmt.Sprint(49152+rand.IntN(16384))))
		if err == nil {
			return c.(*net.UDPConn), nil
		}
		lerr = err
	}
	return nil, fmt.Errorf("bfd: no usable source port in 49152-65535: %w", lerr)
}

// runSession drives the state machine from the received packets and the
// timers until ctx ends, then sends AdminDown.
func runSession(ctx context.Context, p Peer, pkts <-chan rxMsg, tx *net.UDPConn, dst *net.UDPAddr, notify func(Event), log *slog.Logger) error {
	s := NewSession(p.Config)
	var remoteDiag Diag
	send := func(now time.Time) {
		b := s.Packet(now)
		if _, err := tx.WriteToUDP(b.Append(nil), dst); err != nil {
			log.Debug("bfd send", "remote", p.Remote, "err", err)
		}
	}
	change := func(from State, now time.Time) {
		notify(Event{Time: now, Interface: p.Interface, Remote: p.Remote, From: from, To: s.State, Diag: s.Diag, RemoteDiag: remoteDiag,
			RemoteState: s.RemoteState})
	}
	defer func() {
		s.State, s.Diag = AdminDown, DiagAdminDown
		send(time.Now())
	}()
	send(time.Now())
	timer := time.NewTimer(time.Until(s.NextTx()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-pkts:
			if m.err != nil {
				return fmt.Errorf("bfd receive: %w", m.err)
			}
			now := time.Now()
			from := s.State
			remoteDiag = m.p.Diag
			changed, sendNow := s.Receive(m.p, now)
			if changed {
				change(from, now)
			}
			if sendNow {
				send(now)
			}
		case now := <-timer.C:
			from := s.State
			if s.Tick(now) {
				change(from, now)
				send(now)
			}
			if !now.Before(s.NextTx()) {
				send(now)
			}
		}
		next := s.NextTx()
		if d := s.DetectAt(); !d.IsZero() && d.Before(next) {
			next = d
		}
		timer.Reset(time.Until(next))
	}
}

// recvTTL finds IP_TTL or IPV6_HOPLIMIT in the control messages.
func recvTTL(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL ||
			m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT {
			switch {
			case len(m.Data) >= 4:
				return int(binary.NativeEndian.Uint32(m.Data)), true
			case len(m.Data) >= 1:
				return int(m.Data[0]), true
			}
		}
	}
	return 0, false
}

// rxKey identifies a receiving socket: UDP 3784 of one family on one
// interface of one network namespace. Every session of the process that
// shares it reads from one socket: two sockets bound to the same port
// would each get only part of the packets.
type rxKey struct {
	ns  uint64 // inode of the network namespace
	dev string
	v6  bool
}

type rxMsg struct {
	p   Packet
	err error
}

// rxShared is one receiving socket and the sessions it feeds, by peer
// address. Guarded by rxMu.
type rxShared struct {
	conn   *net.UDPConn
	subs   map[netip.Addr]chan rxMsg
	closed bool
}

var (
	rxMu  sync.Mutex
	rxAll = map[rxKey]*rxShared{}
)

// netnsID returns the inode of the calling thread's network namespace.
func netnsID() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("bfd: network namespace: %w", err)
	}
	return st.Ino, nil
}

// subscribe returns the packets from remote that arrive on key's socket
// (opened with listen by the first subscriber) with TTL or hop limit 255
// and parse, and the function that ends the subscription (the last one
// closes the socket). One session per peer and socket.
func subscribe(key rxKey, remote netip.Addr, listen func() (*net.UDPConn, error), log *slog.Logger) (<-chan rxMsg, func(), error) {
	rxMu.Lock()
	defer rxMu.Unlock()
	sh := rxAll[key]
	if sh == nil {
		conn, err := listen()
		if err != nil {
			return nil, nil, err
		}
		sh = &rxShared{conn: conn, subs: map[netip.Addr]chan rxMsg{}}
		rxAll[key] = sh
		go sh.read(key, log)
	}
	if _, dup := sh.subs[remote]; dup {
		return nil, nil, fmt.Errorf("bfd: a session to %s on %q already runs", remote, key.dev)
	}
	ch := make(chan rxMsg, 16)
	sh.subs[remote] = ch
	return ch, func() {
		rxMu.Lock()
		defer rxMu.Unlock()
		delete(sh.subs, remote)
		if len(sh.subs) == 0 && !sh.closed {
			sh.closed = true
			sh.conn.Close()
			if rxAll[key] == sh {
				delete(rxAll, key)
			}
		}
	}, nil
}

// read hands each packet to its peer's session until the socket closes.
// A receive error goes to every session (which ends) and retires the
// socket, so that the next session opens a new one.
func (sh *rxShared) read(key rxKey, log *slog.Logger) {
	buf := make([]byte, 128)
	oob := make([]byte, 128)
	for {
		n, oobn, _, from, err := sh.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			rxMu.Lock()
			if !sh.closed {
				for _, ch := range sh.subs {
					select {
					case ch <- rxMsg{err: err}:
					default:
					}
				}
				sh.closed = true
				sh.conn.Close()
				if rxAll[key] == sh {
					delete(rxAll, key)
				}
			}
			rxMu.Unlock()
			return
		}
		src := from.Addr().Unmap().WithZone("")
		rxMu.Lock()
		ch := sh.subs[src]
		rxMu.Unlock()
		if ch == nil {
			continue
		}
		if ttl, ok := recvTTL(oob[:oobn]); !ok || ttl != 255 {
			log.Debug("bfd packet dropped: TTL or hop limit is not 255", "remote", src, "ttl", ttl)
			continue
		}
		pk, err := Parse(buf[:n])
		if err != nil {
			log.Debug("bfd packet dropped", "remote", src, "err", err)
			continue
		}
		select {
		case ch <- rxMsg{p: pk}:
		default:
			log.Debug("bfd packet dropped: session busy", "remote", src)
		}
	}
}
