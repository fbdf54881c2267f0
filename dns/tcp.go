package dns

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// tcpLimits bound what TCP clients may hold of the server.
type tcpLimits struct {
	idle      time.Duration // between messages
	read      time.Duration // to finish a message once its first byte came
	maxConns  int
	perClient int
	queries   int // per connection
	p4, p6    int // client prefix lengths for perClient
}

func tcpLimitsOf(d *config.DNS) tcpLimits {
	l := tcpLimits{
		idle: orDur(d.TCPIdle, config.DefaultDNSTCPIdle), read: orDur(d.TCPReadTimeout, config.DefaultDNSTCPRead),
		maxConns: d.TCPMaxConnections, perClient: d.TCPMaxPerClient, queries: d.TCPMaxQueries,
		p4: d.RRL.IPv4Prefix, p6: d.RRL.IPv6Prefix,
	}
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.maxConns, config.DefaultDNSTCPConns}, {&l.perClient, config.DefaultDNSTCPClient},
		{&l.queries, config.DefaultDNSTCPQueries}, {&l.p4, config.DefaultDNSRRLPrefix4}, {&l.p6, config.DefaultDNSRRLPrefix6},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// tcpServer accepts DNS-over-TCP connections (RFC 7766) within limits:
// connections over a cap are closed at once, a message begun must be
// finished within the read timeout, a connection carries a bounded
// number of queries, and one that sends what cannot be answered is
// closed.
type tcpServer struct {
	s   *Server
	ln  net.Listener
	lim tcpLimits

	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
	byClient map[netip.Prefix]int
	wg       sync.WaitGroup
}

func newTCPServer(s *Server, ln net.Listener, lim tcpLimits) *tcpServer {
	return &tcpServer{s: s, ln: ln, lim: lim, conns: map[net.Conn]struct{}{}, byClient: map[netip.Prefix]int{}}
}

func (t *tcpServer) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.s.log.Debug("dns tcp accept", "err", err)
			time.Sleep(10 * time.Millisecond) // out of descriptors: let some close
			continue
		}
		p := t.clientPrefix(c.RemoteAddr())
		if !t.admit(c, p) {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // no TIME_WAIT for a flood
			}
			c.Close()
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer t.release(c, p)
			t.s.serveTCPConn(c, t.lim)
		}()
	}
}

func (t *tcpServer) clientPrefix(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	bits := t.lim.p4
	if !ip.Is4() {
		bits = t.lim.p6
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit takes a connection slot for client prefix p, or counts why not.
func (t *tcpServer) admit(c net.Conn, p netip.Prefix) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return false
	case len(t.conns) >= t.lim.maxConns:
		t.s.ctr.tcpRejectTotal.Add(1)
		return false
	case t.byClient[p] >= t.lim.perClient:
		t.s.ctr.tcpRejectClient.Add(1)
		return false
	}
	t.conns[c] = struct{}{}
	t.byClient[p]++
	t.s.ctr.tcpOpen.Add(1)
	return true
}

func (t *tcpServer) release(c net.Conn, p netip.Prefix) {
	c.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	if t.byClient[p]--; t.byClient[p] <= 0 {
		delete(t.byClient, p)
	}
	t.s.ctr.tcpOpen.Add(-1)
}

// close stops accepting, closes every connection and waits for their
// goroutines (at most a second: writes have deadlines).
func (t *tcpServer) close() {
	t.mu.Lock()
	t.closed = true
	t.ln.Close()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// serveTCPConn answers the queries of one connection until the client
// closes it, goes idle, stalls inside a message, reaches the query cap or
// sends a message that cannot be answered.
func (s *Server) serveTCPConn(c net.Conn, lim tcpLimits) {
	w := &tcpWriter{c: c, s: s, timeout: lim.idle}
	var src netip.Addr
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr().Unmap()
	}
	var hdr [2]byte
	buf := make([]byte, 512)
	for range lim.queries {
		c.SetReadDeadline(time.Now().Add(lim.idle))
		if _, err := io.ReadFull(c, hdr[:1]); err != nil {
			if isTimeout(err) {
				s.ctr.tcpClosedIdle.Add(1)
			}
			return
		}
		// A message has begun: it gets the short read timeout.
		c.SetReadDeadline(time.Now().Add(lim.read))
		if _, err := io.ReadFull(c, hdr[1:]); err != nil {
			s.tcpReadFailed(err)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > cap(buf) {
			buf = make([]byte, n)
		}
		msg := buf[:n]
		if _, err := io.ReadFull(c, msg); err != nil {
			s.tcpReadFailed(err)
			return
		}
		if !s.answerTCP(w, msg, src) {
			s.ctr.tcpClosedBad.Add(1)
			return
		}
	}
	s.ctr.tcpClosedQueries.Add(1)
}

func (s *Server) tcpReadFailed(err error) {
	if isTimeout(err) {
		s.ctr.tcpClosedPartial.Add(1)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// answerTCP answers one message; false closes the connection: a message
// too short for a header, a response, or one that does not parse (after
// its FORMERR), since the stream can no longer be trusted.
func (s *Server) answerTCP(w *tcpWriter, in []byte, src netip.Addr) bool {
	if len(in) < 12 || in[2]&0x80 != 0 {
		s.ctr.queries.Add(1)
		s.ctr.tcp.Add(1)
		return false
	}
	req := new(mdns.Msg)
	if err := req.Unpack(in); err != nil {
		s.ctr.queries.Add(1)
		s.ctr.tcp.Add(1)
		w.write(s.formErr(s.view.Load(), in, nil))
		return false
	}
	w.tsigStatus, w.reqMAC, w.timersOnly = nil, "", false
	if t := req.IsTsig(); t != nil {
		w.tsigStatus = mdns.TsigVerifyWithProvider(in, &s.keys, "", false)
		w.reqMAC = t.MAC
	}
	w.src = src
	s.serveTCP(w, req)
	return !w.failed
}

// tcpWriter is the mdns.ResponseWriter of one TCP connection, for the
// handlers and zone transfers: it frames, signs (TSIG, chained through a
// transfer) and writes with a deadline.
type tcpWriter struct {
	c          net.Conn
	s          *Server
	timeout    time.Duration
	src        netip.Addr
	tsigStatus error
	reqMAC     string
	timersOnly bool
	failed     bool
	out, frame []byte
}

func (w *tcpWriter) LocalAddr() net.Addr  { return w.c.LocalAddr() }
func (w *tcpWriter) RemoteAddr() net.Addr { return w.c.RemoteAddr() }
func (w *tcpWriter) Close() error         { return w.c.Close() }
func (w *tcpWriter) TsigStatus() error    { return w.tsigStatus }
func (w *tcpWriter) TsigTimersOnly(b bool) {
	w.timersOnly = b
}
func (w *tcpWriter) Hijack() {}

func (w *tcpWriter) WriteMsg(m *mdns.Msg) error {
	var b []byte
	var err error
	if m.IsTsig() != nil {
		b, w.reqMAC, err = mdns.TsigGenerateWithProvider(m, &w.s.keys, w.reqMAC, w.timersOnly)
	} else {
		b, err = m.PackBuffer(w.out[:0])
	}
	if err != nil {
		w.failed = true
		return err
	}
	_, err = w.Write(b)
	return err
}

// Write sends one message, framed with its length.
func (w *tcpWriter) Write(b []byte) (int, error) {
	if len(b) > mdns.MaxMsgSize {
		w.failed = true
		return 0, errors.New("dns message too long for TCP")
	}
	w.frame = append(append(w.frame[:0], byte(len(b)>>8), byte(len(b))), b...)
	w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	if _, err := w.c.Write(w.frame); err != nil {
		w.failed = true
		return 0, err
	}
	return len(b), nil
}

func (w *tcpWriter) write(b []byte) { w.Write(b) }
