package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// listeners are the server's sockets, keyed by configured address.
type listeners struct {
	s      *Server
	byAddr map[netip.AddrPort]*listener
}

// listener serves one address: several SO_REUSEPORT UDP sockets, each
// read by its own goroutine, and one TCP listener.
type listener struct {
	conf    netip.AddrPort
	bound   netip.AddrPort
	sockets int
	lim     tcpLimits
	udp     []*udpSock
	tcp     *tcpServer
}

func newListeners(s *Server) *listeners {
	return &listeners{s: s, byAddr: map[netip.AddrPort]*listener{}}
}

// reconcile opens what lc lists and is not open yet, then closes what it
// no longer lists. If opening fails, nothing changes.
func (ls *listeners) reconcile(lc listenConf) error {
	want := map[netip.AddrPort]bool{}
	var opened []*listener
	for _, ap := range lc.addrs {
		want[ap] = true
		if l := ls.byAddr[ap]; l != nil && l.sockets == lc.sockets && l.lim == lc.tcp {
			continue
		}
		l, err := ls.s.open(ap, lc)
		if err != nil {
			for _, o := range opened {
				o.close()
			}
			return err
		}
		opened = append(opened, l)
	}
	for ap, l := range ls.byAddr {
		replaced := false
		for _, o := range opened {
			replaced = replaced || o.conf == ap
		}
		if !want[ap] || replaced {
			l.close()
			delete(ls.byAddr, ap)
		}
	}
	for _, l := range opened {
		ls.byAddr[l.conf] = l
		ls.s.serve(l)
	}
	return nil
}

func (ls *listeners) closeAll() {
	if ls == nil {
		return
	}
	for ap, l := range ls.byAddr {
		l.close()
		delete(ls.byAddr, ap)
	}
}

func (ls *listeners) bound() []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range ls.byAddr {
		out = append(out, l.bound)
	}
	return out
}

func (l *listener) close() {
	for _, u := range l.udp {
		u.close()
	}
	if l.tcp != nil {
		l.tcp.close()
	}
}

// reusePort sets SO_REUSEPORT, and for wildcard UDP sockets asks for the
// destination address of each packet so the answer leaves from it.
func reusePort(pktinfo bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr != nil || !pktinfo {
				return
			}
			if network == "udp4" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// open binds the sockets of one address. With port 0 (tests) every socket
// gets the port the first one was given.
func (s *Server) open(ap netip.AddrPort, lc listenConf) (*listener, error) {
	l := &listener{conf: ap, sockets: lc.sockets, lim: lc.tcp}
	wildcard := ap.Addr().IsUnspecified()
	network := "udp6"
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		network = "udp4"
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	tcpNet := "tcp4"
	if network == "udp6" {
		tcpNet = "tcp6"
	}
	for attempt := 0; ; attempt++ {
		err := s.inNS(func() error {
			tlc := net.ListenConfig{Control: reusePort(false)}
			addr := ap
			for i := range lc.sockets {
				u, err := openUDP(addr, wildcard)
				if err != nil {
					return err
				}
				l.udp = append(l.udp, u)
				if i == 0 {
					addr = u.bound
					l.bound = addr
				}
			}
			ln, err := tlc.Listen(context.Background(), tcpNet, addr.String())
			if err != nil {
				return err
			}
			l.tcp = newTCPServer(s, ln, lc.tcp)
			return nil
		})
		if err == nil {
			return l, nil
		}
		l.close()
		l.udp, l.tcp = nil, nil
		// A random UDP port may be taken for TCP: try another.
		if ap.Port() == 0 && attempt < 5 && errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		return nil, fmt.Errorf("dns listen %s: %w", ap, err)
	}
}

func (s *Server) serve(l *listener) {
	for _, u := range l.udp {
		if !u.start() {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveUDP(u)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.tcp.serve()
	}()
}

// replyPktinfo turns the control message of a received packet into the
// one that makes the answer leave from the address the query was sent to.
func replyPktinfo(in, out []byte, v4 bool) []byte {
	for len(in) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&in[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(in) {
			return nil
		}
		data := in[unix.CmsgLen(0):l]
		switch {
		case v4 && h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			var pi unix.Inet4Pktinfo
			copy(pi.Spec_dst[:], data[8:12]) // in_pktinfo.ipi_addr: the header's destination
			return appendCmsg(out, unix.IPPROTO_IP, unix.IP_PKTINFO, (*[unix.SizeofInet4Pktinfo]byte)(unsafe.Pointer(&pi))[:])
		case !v4 && h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			var pi unix.Inet6Pktinfo
			copy(pi.Addr[:], data[:16])
			pi.Ifindex = binary.NativeEndian.Uint32(data[16:20])
			return appendCmsg(out, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, (*[unix.SizeofInet6Pktinfo]byte)(unsafe.Pointer(&pi))[:])
		}
		in = in[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(in)):]
	}
	return nil
}

// appendCmsg appends one control message to out, which has room for it
// (its capacity is 64 bytes, more than a pktinfo message).
func appendCmsg(out []byte, level, typ int32, data []byte) []byte {
	n := len(out)
	out = append(out, make([]byte, unix.CmsgSpace(len(data)))...)
	b := out[n:]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return out
}

// handleUDP answers one UDP query, returning the packed answer in out, or
// nil to send nothing. c (may be nil) is the reader's answer cache.
func (s *Server) handleUDP(v *view, in []byte, src netip.Addr, out []byte, c *answerCache) []byte {
	s.ctr.queries.Add(1)
	s.ctr.udp.Add(1)
	if len(in) < 12 || in[2]&0x80 != 0 {
		return nil // too short for a header, or a response: never answer
	}
	verdict := rrlPass
	if v.rrl != nil {
		verdict = v.rrl.check(src, time.Now())
		if verdict == rrlDrop {
			s.ctr.rrlDropped.Add(1)
			return nil
		}
	}
	var q wireQuery
	plain := verdict == rrlPass && parseWire(v, in, &q)
	if plain {
		if b, ok := s.fastAnswer(v, in, &q, out); ok {
			return b
		}
		if b, ok := c.answer(s, v, in, &q, out); ok {
			return b
		}
	}
	if !plain {
		b, _, _, _ := s.slowUDP(v, in, src, out, verdict)
		return b
	}
	// Answer the question spelled in lower case, and give the answer the
	// client's spelling: the same answer for every spelling (0x20), which
	// the cache can keep.
	var lb [320]byte
	lq := append(lb[:0], in...)
	for i := 12; i < q.qend-4; i++ {
		if ch := lq[i]; ch >= 'A' && ch <= 'Z' {
			lq[i] = ch + 'a' - 'A'
		}
	}
	b, rcode, tc, dyn := s.slowUDP(v, lq, src, out, verdict)
	if len(b) < q.qend {
		return b
	}
	if !dyn {
		c.store(v, &q, b, rcode, tc)
	}
	copy(b[12:q.qend], in[12:q.qend])
	return b
}

// slowUDP answers a UDP query through miekg/dns: unpacked, answered,
// truncated to the client's size and packed. dyn reports an answer that
// may not be reused for another query.
func (s *Server) slowUDP(v *view, in []byte, src netip.Addr, out []byte, verdict rrlVerdict) (b []byte, rcode int, tc, dyn bool) {
	req := new(mdns.Msg)
	if err := req.Unpack(in); err != nil {
		return s.formErr(v, in, out), mdns.RcodeFormatError, false, true
	}
	var resp *mdns.Msg
	tsig := req.IsTsig()
	var tsigErr error
	if tsig != nil {
		tsigErr = mdns.TsigVerifyWithProvider(in, &s.keys, "", false)
	}
	switch {
	case tsigErr != nil:
		resp = new(mdns.Msg).SetRcode(req, mdns.RcodeNotAuth)
		tsig = nil
	case verdict == rrlSlip:
		s.ctr.rrlSlipped.Add(1)
		resp = new(mdns.Msg).SetReply(req)
		resp.Truncated = true
		if req.IsEdns0() != nil {
			resp.SetEdns0(uint16(v.udpSize), false)
		}
	default:
		resp, dyn = s.respondDyn(v, req, false, src)
	}
	if resp == nil {
		return nil, 0, false, true
	}
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), v.udpSize)
	}
	var err error
	if tsig != nil {
		resp.SetTsig(tsig.Hdr.Name, tsig.Algorithm, tsig.Fudge, time.Now().Unix())
		b, _, err = mdns.TsigGenerateWithProvider(resp, &s.keys, tsig.MAC, false)
		if err == nil && len(b) > size {
			resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
			resp.Truncated = true
			resp.SetTsig(tsig.Hdr.Name, tsig.Algorithm, tsig.Fudge, time.Now().Unix())
			b, _, err = mdns.TsigGenerateWithProvider(resp, &s.keys, tsig.MAC, false)
		}
	} else {
		fit(resp, size)
		b, err = resp.PackBuffer(out)
	}
	if err != nil {
		s.log.Debug("dns pack", "err", err)
		resp = new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
		if b, err = resp.PackBuffer(out); err != nil {
			return nil, 0, false, true
		}
		dyn = true
	}
	if resp.Truncated {
		s.ctr.truncated.Add(1)
	}
	s.ctr.rcode(resp.Rcode)
	return b, resp.Rcode, resp.Truncated, dyn || tsig != nil || verdict != rrlPass
}

// formErr answers a message that does not parse: FORMERR with the
// request's ID, opcode and RD, its question when that much parses, and
// an OPT when the request has one well-formed OPT record (RFC 6891
// section 7: an option inside it may be what is wrong).
func (s *Server) formErr(v *view, in, out []byte) []byte {
	s.ctr.rcode(mdns.RcodeFormatError)
	out = append(out[:0], in[:12]...)
	out[2] = 0x80 | in[2]&0x79 // QR, opcode, RD; no AA/TC
	out[3] = mdns.RcodeFormatError
	clear(out[4:12])
	if binary.BigEndian.Uint16(in[4:]) != 1 {
		return out
	}
	qend, ok := skipName(in, 12)
	if !ok || qend+4 > len(in) {
		return out
	}
	qend += 4
	out = append(out, in[12:qend]...)
	out[5] = 1
	if optCount(in, qend) == 1 {
		us := uint16(v.udpSize)
		out = append(out, 0, 0, byte(mdns.TypeOPT), byte(us>>8), byte(us), 0, 0, 0, 0, 0, 0)
		out[11] = 1
	}
	return out
}

// optionsFrame reports whether EDNS options tile an OPT's RDATA.
func optionsFrame(rd []byte) bool {
	for len(rd) > 0 {
		if len(rd) < 4 || 4+int(binary.BigEndian.Uint16(rd[2:])) > len(rd) {
			return false
		}
		rd = rd[4+int(binary.BigEndian.Uint16(rd[2:])):]
	}
	return true
}

// skipName returns the offset after the uncompressed name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// optCount counts the well-framed OPT records (root owner) after the
// question that ends at off; -1 when the records do not frame.
func optCount(b []byte, off int) int {
	nrr := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	n := 0
	for range nrr {
		end := off
		if end < len(b) && b[end]&0xc0 == 0xc0 {
			end += 2
		} else {
			var ok bool
			if end, ok = skipName(b, off); !ok {
				return -1
			}
		}
		if end+10 > len(b) {
			return -1
		}
		rdlen := int(binary.BigEndian.Uint16(b[end+8:]))
		if end+10+rdlen > len(b) {
			return -1
		}
		if binary.BigEndian.Uint16(b[end:]) == mdns.TypeOPT && b[off] == 0 {
			if !optionsFrame(b[end+10 : end+10+rdlen]) {
				return -1
			}
			n++
		}
		off = end + 10 + rdlen
	}
	return n
}

// serveTCP answers one query read from a TCP connection.
func (s *Server) serveTCP(w mdns.ResponseWriter, req *mdns.Msg) {
	s.ctr.queries.Add(1)
	s.ctr.tcp.Add(1)
	var src netip.Addr
	if a, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		src = a.AddrPort().Addr().Unmap()
	}
	v := s.view.Load()
	tsig := req.IsTsig()
	if tsig != nil && w.TsigStatus() != nil {
		resp := new(mdns.Msg).SetRcode(req, mdns.RcodeNotAuth)
		s.ctr.rcode(resp.Rcode)
		w.WriteMsg(resp)
		return
	}
	if !req.Response && req.Opcode == mdns.OpcodeQuery && len(req.Question) == 1 &&
		(req.Question[0].Qtype == mdns.TypeAXFR || req.Question[0].Qtype == mdns.TypeIXFR) {
		s.transfer(v, w, req, src)
		return
	}
	resp := s.respond(v, req, true, src)
	if resp == nil {
		return
	}
	fit(resp, mdns.MaxMsgSize)
	if tsig != nil {
		resp.SetTsig(tsig.Hdr.Name, tsig.Algorithm, tsig.Fudge, time.Now().Unix())
	}
	s.ctr.rcode(resp.Rcode)
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns tcp write", "err", err)
	}
}

// fit makes resp fit in size bytes, names compressed. Only records left
// out of the answer or authority set TC (RFC 2181 section 9): what does
// not fit in the additional section is extra information, and a
// resolver need not retry over TCP for it.
func fit(resp *mdns.Msg, size int) {
	na, nns := len(resp.Answer), len(resp.Ns)
	tc := resp.Truncated
	resp.Truncate(size)
	// Truncate turns compression off when the message fits without it.
	resp.Compress = true
	resp.Truncated = tc || len(resp.Answer) < na || len(resp.Ns) < nns
}
