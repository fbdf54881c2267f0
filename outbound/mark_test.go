package outbound

import (
	"syscall"

	"golang.org/x/sys/unix"
)

type syscallRawConn = syscall.RawConn

func setMark(rc syscall.RawConn, mark uint32) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	}); err != nil {
		return err
	}
	return serr
}
