package bond

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// halfCloser is a connection whose write side closes alone (TCP).
type halfCloser interface {
	CloseWrite() error
}

// Relay copies a→b and b→a until both directions have ended: an EOF on
// one side closes the other side's write half (half-close), so a request
// whose sender has finished still gets its answer. A write blocks while
// the receiver is slow (backpressure: each direction has one 32 KiB
// buffer). If neither side sends for idle, both are closed. up and down
// (may be nil) count the bytes a→b and b→a as they go. Relay closes both
// connections before returning.
func Relay(a, b net.Conn, idle time.Duration, up, down func(int)) {
	relay(a, b, idle, up, down, nil)
}

// relay is Relay; before (may be nil) runs when both directions have
// ended, before the connections are closed.
func relay(a, b net.Conn, idle time.Duration, up, down func(int), before func()) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, a, idle, &last, up) }()
	go func() { defer wg.Done(); pipe(a, b, idle, &last, down) }()
	wg.Wait()
	if before != nil {
		before()
	}
	a.Close()
	b.Close()
}

// pipe copies src to dst. A read that times out ends the pipe only if the
// other direction has been quiet too.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64, count func(int)) {
	buf := make([]byte, 32<<10)
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Unix(0, last.Load()).Add(idle))
		}
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if idle > 0 {
				dst.SetWriteDeadline(time.Now().Add(idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
			if count != nil {
				count(n)
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
			continue // the other direction is busy: not idle
		}
		if err == io.EOF {
			if hc, ok := dst.(halfCloser); ok {
				hc.CloseWrite()
				return
			}
		}
		// Idle, reset or error: end both directions.
		src.Close()
		dst.Close()
		return
	}
}
