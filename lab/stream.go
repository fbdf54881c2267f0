package lab

import (
	"net"
	"time"
)

// ServeStream writes an endless stream to every connection ln accepts,
// until ln is closed: chunk bytes a write, pace apart (0: as fast as the
// client reads). A client that takes nothing for stall is dropped. The
// download server of the bond and MPTCP tests and of the demo.
func ServeStream(ln net.Listener, chunk int, pace, stall time.Duration) {
	buf := make([]byte, chunk)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				c.SetWriteDeadline(time.Now().Add(stall))
				if _, err := c.Write(buf); err != nil {
					return
				}
				if pace > 0 {
					time.Sleep(pace)
				}
			}
		}()
	}
}
