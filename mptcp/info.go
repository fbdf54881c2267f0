package mptcp

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket options of MPTCP sockets (include/uapi/linux/mptcp.h).
const (
	solMPTCP  = 284
	mptcpInfo = 1
)

// Info is the start of the kernel's struct mptcp_info for one connection.
type Info struct {
	// Subflows is the number of subflows the path manager added to the
	// initial one.
	Subflows int
	// AddAddrAccepted is how many of the peer's announced addresses
	// were accepted.
	AddAddrAccepted int
	// WriteSeq, SndUna and RcvNxt are the connection-level sequence
	// numbers.
	WriteSeq, SndUna, RcvNxt uint64
}

// ConnInfo reads MPTCP_INFO from an MPTCP connection (a *net.TCPConn
// whose MultipathTCP() is true).
func ConnInfo(c syscall.Conn) (Info, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Info{}, err
	}
	var buf [64]byte
	n := uint32(len(buf))
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, solMPTCP, mptcpInfo, uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return Info{}, fmt.Errorf("mptcp: MPTCP_INFO: %w", err)
	}
	if n < 40 {
		return Info{}, fmt.Errorf("mptcp: MPTCP_INFO: short answer (%d bytes)", n)
	}
	le := binary.NativeEndian.Uint64
	return Info{Subflows: int(buf[0]), AddAddrAccepted: int(buf[2]), WriteSeq: le(buf[16:]), SndUna: le(buf[24:]), RcvNxt: le(buf[32:])}, nil
}
