package dns

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpSock is one UDP socket, read by one goroutine with blocking
// recvmmsg and answered with sendmmsg. The socket is not in the Go
// netpoller: an epoll registration costs a wakeup callback on every
// datagram sent and received, and the park/unpark of the reader through
// epoll_wait cost more CPU than answering (see docs/dns.md, Benchmark).
type udpSock struct {
	fd      int
	bound   netip.AddrPort
	pktinfo bool // wildcard: answer from each query's destination address
	v4      bool

	mu      sync.Mutex
	closed  atomic.Bool
	serving bool          // the reader owns fd and closes it
	done    chan struct{} // closed by the reader when it has closed fd
	fdOpen  bool
}

// udpReadTimeout bounds each blocking read, so a closed socket is noticed
// even if shutdown did not wake the reader.
const udpReadTimeout = 500 * time.Millisecond

// openUDP binds a UDP socket with SO_REUSEPORT to ap.
func openUDP(ap netip.AddrPort, pktinfo bool) (*udpSock, error) {
	u := &udpSock{pktinfo: pktinfo, v4: ap.Addr().Is4(), done: make(chan struct{})}
	fam := unix.AF_INET6
	if u.v4 {
		fam = unix.AF_INET
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	u.fd, u.fdOpen = fd, true
	tv := unix.NsecToTimeval(int64(udpReadTimeout))
	opts := []struct {
		level, opt int
		on         bool
	}{
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, true},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, pktinfo && u.v4},
		{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, !u.v4},
		{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, pktinfo && !u.v4},
	}
	for _, o := range opts {
		if o.on {
			if err = unix.SetsockoptInt(fd, o.level, o.opt, 1); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	if err == nil {
		var sa unix.Sockaddr
		if u.v4 {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		} else {
			sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		}
		err = unix.Bind(fd, sa)
	}
	var sa unix.Sockaddr
	if err == nil {
		sa, err = unix.Getsockname(fd)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		u.bound = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		u.bound = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return u, nil
}

// close stops the reader and waits until it has closed the descriptor
// (the reader closes it, so it is never reused under a blocked
// recvmmsg): once close returns, the socket has left its SO_REUSEPORT
// group and no query goes to it any more.
func (u *udpSock) close() {
	u.mu.Lock()
	if u.closed.Swap(true) {
		u.mu.Unlock()
		return
	}
	unix.Shutdown(u.fd, unix.SHUT_RDWR)
	serving := u.serving
	if !serving && u.fdOpen {
		unix.Close(u.fd)
		u.fdOpen = false
	}
	u.mu.Unlock()
	if serving {
		select {
		case <-u.done:
		case <-time.After(2 * udpReadTimeout):
		}
	}
}

// start hands the descriptor to the reader; false if already closed.
func (u *udpSock) start() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed.Load() {
		return false
	}
	u.serving = true
	return true
}

// udpCoalesce is how long a reader pauses after a small batch (under a
// quarter of udpBatch) before reading again, so that the next read finds
// a batch rather than one datagram: like a NIC's interrupt moderation,
// it trades at most this much latency for fewer wakeups of the server
// and of its clients per query (docs/dns.md, Benchmark).
const udpCoalesce = 200 * time.Microsecond

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// udpBatch is how many datagrams one recvmmsg/sendmmsg call moves.
const udpBatch = 32

// udpBufs are a reader's buffers, allocated once: no allocation per
// datagram.
type udpBufs struct {
	in, out [udpBatch]mmsghdr
	inIov   [udpBatch]unix.Iovec
	outIov  [udpBatch]unix.Iovec
	names   [udpBatch][unix.SizeofSockaddrInet6]byte
	oob     [udpBatch][128]byte
	outOOB  [udpBatch][]byte
	data    [udpBatch][]byte
	answers [udpBatch][]byte
	cache   *answerCache
}

func newUDPBufs(pktinfo bool) *udpBufs {
	b := &udpBufs{cache: newAnswerCache()}
	for i := range udpBatch {
		b.data[i] = make([]byte, 4096)
		b.answers[i] = make([]byte, 0, 2048)
		b.inIov[i].Base = &b.data[i][0]
		b.inIov[i].SetLen(len(b.data[i]))
		h := &b.in[i].hdr
		h.Name = &b.names[i][0]
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		if pktinfo {
			h.Control = &b.oob[i][0]
			b.outOOB[i] = make([]byte, 0, 64)
		}
		o := &b.out[i].hdr
		o.Iov = &b.outIov[i]
		o.SetIovlen(1)
	}
	return b
}

// srcAddr is the address in a received sockaddr.
func srcAddr(name []byte, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte(name[4:8]))
	}
	return netip.AddrFrom16([16]byte(name[8:24])).Unmap()
}

// serveUDP reads queries from u until it is closed, a batch at a time,
// and sends the answers of a batch together.
func (s *Server) serveUDP(u *udpSock) {
	defer close(u.done)
	defer unix.Close(u.fd)
	b := newUDPBufs(u.pktinfo)
	yielded := time.Now()
	for !u.closed.Load() {
		if time.Since(yielded) > 2*time.Millisecond {
			// Let the scheduler see this goroutine yield: one that never
			// does is taken for a runaway after 10 ms, and its P is then
			// handed around on every blocking read (sysmon retake).
			runtime.Gosched()
			yielded = time.Now()
		}
		for i := range udpBatch {
			h := &b.in[i].hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.Flags = 0
			if u.pktinfo {
				h.SetControllen(len(b.oob[i]))
			}
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&b.in[0])), udpBatch, unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 {
			if errno == unix.EAGAIN || errno == unix.EINTR || u.closed.Load() {
				continue
			}
			s.log.Warn("dns udp read", "err", errno)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.answerBatch(u, b, int(r))
		if int(r) < udpBatch/4 {
			ts := unix.NsecToTimespec(int64(udpCoalesce))
			unix.Nanosleep(&ts, nil)
		}
	}
}

// answerBatch answers the n datagrams read into b and sends the answers.
func (s *Server) answerBatch(u *udpSock, b *udpBufs, n int) {
	v := s.view.Load()
	k := 0
	for i := range n {
		in := &b.in[i]
		q := b.data[i][:in.n]
		var resp []byte
		if in.hdr.Flags&unix.MSG_TRUNC != 0 {
			// Bigger than any query we answer: FORMERR, header only.
			if len(q) >= 12 && q[2]&0x80 == 0 {
				resp = s.formErr(v, q[:12], b.answers[k][:0])
			}
		} else {
			resp = s.handleUDP(v, q, srcAddr(b.names[i][:], u.v4), b.answers[k][:0], b.cache)
		}
		if len(resp) == 0 {
			continue
		}
		if cap(resp) > cap(b.answers[k]) && cap(resp) <= 65536 {
			b.answers[k] = resp[:0] // keep the bigger buffer for next time
		}
		o := &b.out[k].hdr
		o.Name, o.Namelen = in.hdr.Name, in.hdr.Namelen
		b.outIov[k].Base = &resp[0]
		b.outIov[k].SetLen(len(resp))
		o.Control = nil
		o.SetControllen(0)
		if u.pktinfo {
			if oob := replyPktinfo(b.oob[i][:in.hdr.Controllen], b.outOOB[k][:0], u.v4); len(oob) > 0 {
				b.outOOB[k] = oob
				o.Control = &oob[0]
				o.SetControllen(len(oob))
			}
		}
		k++
	}
	for sent := 0; sent < k; {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(u.fd), uintptr(unsafe.Pointer(&b.out[sent])), uintptr(k-sent), 0, 0, 0)
		if errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			if !u.closed.Load() {
				s.log.Debug("dns udp write", "err", errno)
			}
			r = 1 // skip the datagram that failed and go on with the rest
		}
		sent += int(r)
	}
}
