package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// nextID hands out echo identifiers: each prober of this process has its
// own. Other processes may pick the same; the payload cookie tells their
// replies apart.
var nextID atomic.Uint32

func init() {
	var b [2]byte
	_, _ = rand.Read(b[:])
	nextID.Store(uint32(binary.BigEndian.Uint16(b[:])))
}

type icmpReply struct {
	at  time.Time
	err error
}

type icmpProber struct {
	target string
	dst    netip.Addr
	v6     bool
	conn   *net.IPConn
	id     uint16
	cookie [8]byte

	mu      sync.Mutex
	seq     uint16
	pending map[uint16]chan icmpReply
	closed  bool
	done    chan struct{}
	readErr chan struct{}
}

func newICMP(target string, b Binding) (*icmpProber, error) {
	dst, err := netip.ParseAddr(target)
	if err != nil {
		return nil, fmt.Errorf("icmp probe: target %q is not an IP address", target)
	}
	dst = dst.Unmap()
	p := &icmpProber{
		target:  target,
		dst:     dst,
		v6:      dst.Is6(),
		id:      uint16(nextID.Add(1)),
		pending: make(map[uint16]chan icmpReply),
		done:    make(chan struct{}),
		readErr: make(chan struct{}),
	}
	_, _ = rand.Read(p.cookie[:])
	network, laddr := "ip4:icmp", ""
	if p.v6 {
		network = "ip6:ipv6-icmp"
	}
	if src := b.source(dst); src.IsValid() {
		laddr = src.String()
	}
	lc := net.ListenConfig{Control: b.control}
	c, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("icmp probe %s: %w", target, err)
	}
	p.conn = c.(*net.IPConn)
	// Let the kernel hand us only echo replies and the errors that may
	// quote our requests.
	if p.v6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		f.Accept(ipv6.ICMPTypeDestinationUnreachable)
		f.Accept(ipv6.ICMPTypeTimeExceeded)
		err = ipv6.NewPacketConn(p.conn).SetICMPFilter(&f)
	} else {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		f.Accept(ipv4.ICMPTypeDestinationUnreachable)
		f.Accept(ipv4.ICMPTypeTimeExceeded)
		err = ipv4.NewPacketConn(p.conn).SetICMPFilter(&f)
	}
	if err != nil {
		p.conn.Close()
		return nil, fmt.Errorf("icmp probe %s: set filter: %w", target, err)
	}
	go p.read()
	return p, nil
}

func (p *icmpProber) Target() string { return p.target }
func (p *icmpProber) Type() string   { return "icmp" }

func (p *icmpProber) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	err := p.conn.Close()
	<-p.readErr
	return err
}

func (p *icmpProber) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	p.seq++
	seq := p.seq
	ch := make(chan icmpReply, 1)
	p.pending[seq] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, seq)
		p.mu.Unlock()
	}()

	pkt, err := p.marshalEcho(seq)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := p.conn.WriteTo(pkt, &net.IPAddr{IP: p.dst.AsSlice()}); err != nil {
		return 0, classify(err, ctx)
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return 0, r.err
		}
		return r.at.Sub(start), nil
	case <-t.C:
		return 0, ErrTimeout
	case <-ctx.Done():
		return 0, classify(ctx.Err(), ctx)
	case <-p.done:
		return 0, ErrClosed
	}
}

func (p *icmpProber) marshalEcho(seq uint16) ([]byte, error) {
	payload := make([]byte, 16)
	copy(payload, p.cookie[:])
	m := icmp.Message{Body: &icmp.Echo{ID: int(p.id), Seq: int(seq), Data: payload}}
	if p.v6 {
		m.Type = ipv6.ICMPTypeEchoRequest
	} else {
		m.Type = ipv4.ICMPTypeEcho
	}
	// For ICMPv6 the kernel fills in the checksum.
	return m.Marshal(nil)
}

// read dispatches replies to waiting probes until the socket is closed.
func (p *icmpProber) read() {
	defer close(p.readErr)
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.done:
				return
			default:
			}
			// Transient errors (e.g. ENOBUFS, a queued ICMP error):
			// keep reading; the pending probes time out if needed.
			continue
		}
		var src netip.Addr
		if ia, ok := from.(*net.IPAddr); ok {
			src, _ = netip.AddrFromSlice(ia.IP)
			src = src.Unmap()
		}
		seq, rerr, ok := p.match(buf[:n], src)
		if !ok {
			continue
		}
		p.mu.Lock()
		ch := p.pending[seq]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- icmpReply{at: at, err: rerr}:
			default:
			}
		}
	}
}

// match parses an ICMP message received from src and reports whether it
// answers one of our requests: an echo reply from the target, or an error
// quoting an echo request to the target.
func (p *icmpProber) match(b []byte, src netip.Addr) (seq uint16, rerr error, ok bool) {
	proto := protoICMP
	if p.v6 {
		proto = protoICMPv6
	}
	m, err := icmp.ParseMessage(proto, b)
	if err != nil {
		return 0, nil, false
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return 0, nil, false
		}
		if body.ID != int(p.id) || src != p.dst || len(body.Data) < len(p.cookie) ||
			[8]byte(body.Data[:8]) != p.cookie {
			return 0, nil, false
		}
		return uint16(body.Seq), nil, true
	case *icmp.DstUnreach:
		seq, ok := p.quoted(body.Data)
		if !ok {
			return 0, nil, false
		}
		return seq, fmt.Errorf("%s from %s", unreachReason(p.v6, m.Code), src), true
	case *icmp.TimeExceeded:
		seq, ok := p.quoted(body.Data)
		if !ok {
			return 0, nil, false
		}
		return seq, fmt.Errorf("time exceeded from %s", src), true
	}
	return 0, nil, false
}

// quoted extracts the sequence number of our echo request quoted in an
// ICMP error.
func (p *icmpProber) quoted(d []byte) (uint16, bool) {
	var dst netip.Addr
	var rest []byte
	if p.v6 {
		if len(d) < 40+8 || d[0]>>4 != 6 || d[6] != protoICMPv6 {
			return 0, false
		}
		dst = netip.AddrFrom16([16]byte(d[24:40]))
		rest = d[40:]
		if rest[0] != byte(ipv6.ICMPTypeEchoRequest) {
			return 0, false
		}
	} else {
		if len(d) < 20 || d[0]>>4 != 4 {
			return 0, false
		}
		ihl := int(d[0]&0x0f) * 4
		if ihl < 20 || len(d) < ihl+8 || d[9] != protoICMP {
			return 0, false
		}
		dst = netip.AddrFrom4([4]byte(d[16:20]))
		rest = d[ihl:]
		if rest[0] != byte(ipv4.ICMPTypeEcho) {
			return 0, false
		}
	}
	if dst != p.dst || binary.BigEndian.Uint16(rest[4:6]) != p.id {
		return 0, false
	}
	return binary.BigEndian.Uint16(rest[6:8]), true
}

func unreachReason(v6 bool, code int) string {
	if v6 {
		switch code {
		case 0:
			return "no route to destination"
		case 1:
			return "administratively prohibited"
		case 3:
			return "address unreachable"
		case 4:
			return "port unreachable"
		}
	} else {
		switch code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 3:
			return "port unreachable"
		case 9, 10, 13:
			return "administratively prohibited"
		}
	}
	return fmt.Sprintf("destination unreachable (code %d)", code)
}
