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
	// neighbour's. IPv4 only.
	Local, Remote netip.Addr
	Config
}

// Event is a session state change.
type Event struct {
	Time      time.Time
	Interface string
	Remote    netip.Addr
	From, To  State
	// Diag is ours on the way down (e.g. detection time expired), or
	// "neighbor signaled session down".
	Diag Diag
	// RemoteDiag is the diagnostic the neighbour last sent.
	RemoteDiag Diag
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
func Run(ctx context.Context, p Peer, notify func(Event), log *slog.Logger) error {
	if !p.Remote.Is4() {
		return fmt.Errorf("bfd: only IPv4 peers are supported, got %s", p.Remote)
	}
	lc := net.ListenConfig{Control: control(p.Interface, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
	})}
	local := "0.0.0.0"
	rxc, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("%s:%d", local, Port))
	if err != nil {
		return fmt.Errorf("bfd listen: %w", err)
	}
	rx := rxc.(*net.UDPConn)
	defer rx.Close()

	txl := net.ListenConfig{Control: control(p.Interface, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, 255)
	})}
	var tx *net.UDPConn
	src := "0.0.0.0"
	if p.Local.IsValid() {
		src = p.Local.String()
	}
	for range 32 {
		c, err := txl.ListenPacket(ctx, "udp4", fmt.Sprintf("%s:%d", src, 49152+rand.IntN(16384)))
		if err == nil {
			tx = c.(*net.UDPConn)
			break
		}
	}
	if tx == nil {
		return errors.New("bfd: no free source port in 49152-65535")
	}
	defer tx.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Remote, Port))

	type rxMsg struct {
		p   Packet
		err error
	}
	pkts := make(chan rxMsg, 16)
	go func() {
		buf := make([]byte, 128)
		oob := make([]byte, 128)
		for {
			n, oobn, _, from, err := rx.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				if ctx.Err() == nil {
					pkts <- rxMsg{err: err}
				}
				close(pkts)
				return
			}
			if from.Addr().Unmap() != p.Remote {
				continue
			}
			if ttl, ok := recvTTL(oob[:oobn]); !ok || ttl != 255 {
				log.Debug("bfd packet dropped: TTL is not 255", "remote", p.Remote, "ttl", ttl)
				continue
			}
			pk, err := Parse(buf[:n])
			if err != nil {
				log.Debug("bfd packet dropped", "remote", p.Remote, "err", err)
				continue
			}
			pkts <- rxMsg{p: pk}
		}
	}()

	s := NewSession(p.Config)
	var remoteDiag Diag
	send := func(now time.Time) {
		b := s.Packet(now)
		if _, err := tx.WriteToUDP(b.Append(nil), dst); err != nil {
			log.Debug("bfd send", "remote", p.Remote, "err", err)
		}
	}
	change := func(from State, now time.Time) {
		notify(Event{Time: now, Interface: p.Interface, Remote: p.Remote, From: from, To: s.State, Diag: s.Diag, RemoteDiag: remoteDiag})
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
		case m, ok := <-pkts:
			if !ok || m.err != nil {
				return fmt.Errorf("bfd receive: %v", m.err)
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

// recvTTL finds IP_TTL in the control messages.
func recvTTL(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL {
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
