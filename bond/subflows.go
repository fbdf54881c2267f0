package bond

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MPTCP socket options (include/uapi/linux/mptcp.h).
const (
	solMPTCP          = 284
	mptcpTCPInfo      = 2
	mptcpSubflowAddrs = 3
	subflowDataLen    = 16  // struct mptcp_subflow_data
	subflowAddrsLen   = 256 // struct mptcp_subflow_addrs: two sockaddr_storage
	maxSubflows       = 8
)

// Subflow is one subflow of an MPTCP connection.
type Subflow struct {
	Local, Remote netip.AddrPort
	// BytesAcked were sent and acknowledged, BytesReceived received.
	BytesAcked, BytesReceived uint64
}

// Subflows reads the subflows of an MPTCP connection: their addresses
// and byte counts.
func Subflows(c *net.TCPConn) ([]Subflow, error) {
	infoLen := int(unsafe.Sizeof(unix.TCPInfo{}))
	infos, err := subflowData(c, mptcpTCPInfo, infoLen)
	if err != nil {
		return nil, err
	}
	addrs, err := subflowData(c, mptcpSubflowAddrs, subflowAddrsLen)
	if err != nil {
		return nil, err
	}
	n := min(len(infos), len(addrs))
	out := make([]Subflow, 0, n)
	acked, received := int(unsafe.Offsetof(unix.TCPInfo{}.Bytes_acked)), int(unsafe.Offsetof(unix.TCPInfo{}.Bytes_received))
	for i := range n {
		var s Subflow
		s.Local, _ = parseSockaddr(addrs[i][:128])
		s.Remote, _ = parseSockaddr(addrs[i][128:])
		if len(infos[i]) >= received+8 {
			s.BytesAcked = binary.NativeEndian.Uint64(infos[i][acked:])
			s.BytesReceived = binary.NativeEndian.Uint64(infos[i][received:])
		}
		out = append(out, s)
	}
	return out, nil
}

// subflowData runs one of the getsockopts that answer a struct
// mptcp_subflow_data followed by one element per subflow.
func subflowData(c *net.TCPConn, opt, elem int) ([][]byte, error) {
	buf := make([]byte, subflowDataLen+maxSubflows*elem)
	binary.NativeEndian.PutUint32(buf[0:], subflowDataLen)
	binary.NativeEndian.PutUint32(buf[12:], uint32(elem))
	n := uint32(len(buf))
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, solMPTCP, uintptr(opt), uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("bond: subflow getsockopt %d: %w", opt, err)
	}
	count := int(binary.NativeEndian.Uint32(buf[4:]))
	size := int(binary.NativeEndian.Uint32(buf[12:]))
	if size == 0 || size > elem {
		return nil, fmt.Errorf("bond: subflow getsockopt %d: element size %d", opt, size)
	}
	var out [][]byte
	for i := 0; i < count && subflowDataLen+(i+1)*size <= int(n); i++ {
		out = append(out, buf[subflowDataLen+i*size:subflowDataLen+(i+1)*size])
	}
	return out, nil
}

// subflowBytes is what was already counted of one connection's subflows.
type subflowBytes struct {
	seen map[[2]netip.AddrPort][2]uint64
}

// sample adds what each live bonded connection's subflows moved since the
// last sample to the per-link byte counters.
func (p *Proxy) sample() {
	if p.linkOf == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, sb := range p.conns {
		subs, err := Subflows(c)
		if err != nil {
			continue
		}
		if sb.seen == nil {
			sb.seen = map[[2]netip.AddrPort][2]uint64{}
		}
		for _, s := range subs {
			k := [2]netip.AddrPort{s.Local, s.Remote}
			prev := sb.seen[k]
			link := p.linkOf(s.Local.Addr())
			if link == "" {
				link = "unknown"
			}
			if s.BytesAcked > prev[0] {
				p.linkByte.WithLabelValues(link, "up").Add(float64(s.BytesAcked - prev[0]))
			}
			if s.BytesReceived > prev[1] {
				p.linkByte.WithLabelValues(link, "down").Add(float64(s.BytesReceived - prev[1]))
			}
			sb.seen[k] = [2]uint64{s.BytesAcked, s.BytesReceived}
		}
	}
}

// sampleEvery runs sample until done closes.
func (p *Proxy) sampleEvery(d time.Duration, done <-chan struct{}) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			p.sample()
		}
	}
}
