package bond

import (
	"context"
	"errors"
	"net"
)

// serve accepts connections on ln until it fails or ctx ends (nil
// then), the proxy's and the aggregator's loop. A connection is handled
// (handle, on its own goroutine) while a slot of sem is free; otherwise
// refuse is told and the connection closed. Accept timeouts are retried.
func serve(ctx context.Context, ln net.Listener, sem chan struct{}, refuse func(net.Conn), handle func(net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case sem <- struct{}{}:
		default:
			refuse(c)
			c.Close()
			continue
		}
		go func() {
			defer func() { <-sem }()
			handle(c)
		}()
	}
}
