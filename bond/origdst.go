package bond

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (SOL_IP) and IP6T_SO_ORIGINAL_DST
// (SOL_IPV6): the destination a connection had before a redirect.
const soOriginalDst = 80

// OriginalDst returns where c was going before the gateway redirected it
// to the proxy (from conntrack). For a connection that was not
// redirected it is c's own local address.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	var buf [28]byte // sockaddr_in6 (sockaddr_in fits)
	n := uint32(len(buf))
	var serr error
	level := unix.SOL_IP
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		level = unix.SOL_IPV6
	}
	err = rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst, uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bond: original destination: %w", err)
	}
	return parseSockaddr(buf[:n])
}

// parseSockaddr reads a struct sockaddr_in or sockaddr_in6.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 8 {
		return netip.AddrPort{}, fmt.Errorf("bond: short sockaddr (%d bytes)", len(b))
	}
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		a, _ := netip.AddrFromSlice(b[4:8])
		return netip.AddrPortFrom(a, port), nil
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("bond: short sockaddr_in6 (%d bytes)", len(b))
		}
		a, _ := netip.AddrFromSlice(b[8:24])
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("bond: unknown address family %d", binary.NativeEndian.Uint16(b[0:2]))
}
