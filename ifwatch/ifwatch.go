// Package ifwatch follows the interfaces of a network namespace through
// netlink: the one subscription loop to link and address changes that
// the link monitor, outbound and mptcp use. A subscription that fails
// (receive error, socket overrun) is made again with back-off, and the
// caller is told to re-read what it needs, so no change is lost for good.
//
// The state is re-read by the caller after subscribing, never with the
// subscriptions' ListExisting option: vishvananda/netlink sends that dump
// request to the socket's own address, multicast groups included, so as
// root the kernel also broadcasts the request to every other subscriber
// of those groups in the namespace, which then report "Wrong sender
// portid" (vishvananda/netlink issue 786). SourceAddrs says which of an
// interface's addresses can source traffic, for all of them alike.
package ifwatch

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Handler receives what the subscription reports, on Run's goroutine,
// one call at a time. Nil fields are not called.
type Handler struct {
	// Subscribed is called once the subscription is in place, the first
	// time and after every failure: changes before it may have been
	// missed, so read the state needed now. An error fails the
	// subscription (it is made again).
	Subscribed func() error
	// Link and Addr receive every link and address update.
	Link func(netlink.LinkUpdate)
	Addr func(netlink.AddrUpdate)
}

// Run follows the namespace ns (nil: the process's own) until ctx ends.
// ready, unless nil, is closed once the first subscription is in place
// or has failed (it is tried again). Failures are logged on log.
func Run(ctx context.Context, ns *netns.NsHandle, log *slog.Logger, h Handler, ready chan<- struct{}) {
	first := true
	started := func() {
		if first && ready != nil {
			close(ready)
		}
		first = false
	}
	defer started()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := session(ctx, ns, log, h, started)
		started() // could not even subscribe: the caller goes on without
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = 100 * time.Millisecond // it had been working
		}
		log.Warn("netlink subscription failed: subscribing again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session runs one pair of subscriptions until one fails or ctx is done.
func session(ctx context.Context, ns *netns.NsHandle, log *slog.Logger, h Handler, started func()) error {
	done := make(chan struct{})
	lch := make(chan netlink.LinkUpdate, 256)
	ach := make(chan netlink.AddrUpdate, 256)
	errc := make(chan error, 1)
	report := func(err error) {
		if strings.HasPrefix(err.Error(), "Wrong sender portid") {
			// Another program's request broadcast to the group (see
			// the package doc): dropped by the library, the socket is
			// fine.
			log.Debug("netlink: ignored a message not from the kernel", "err", err)
			return
		}
		select {
		case errc <- err:
		default:
		}
	}
	defer func() {
		close(done)
		// The subscription goroutines close their channels once their
		// sockets are closed; drain so they never block on a send.
		go func() {
			for range lch {
			}
		}()
		go func() {
			for range ach {
			}
		}()
	}()
	if err := netlink.LinkSubscribeWithOptions(lch, done, netlink.LinkSubscribeOptions{
		Namespace: ns, ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribe to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(ach, done, netlink.AddrSubscribeOptions{
		Namespace: ns, ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribe to addresses: %w", err)
	}
	started()
	if h.Subscribed != nil {
		if err := h.Subscribed(); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case u, ok := <-lch:
			if !ok {
				return fmt.Errorf("link subscription closed")
			}
			if h.Link != nil {
				h.Link(u)
			}
		case u, ok := <-ach:
			if !ok {
				return fmt.Errorf("address subscription closed")
			}
			if h.Addr != nil {
				h.Addr(u)
			}
		}
	}
}
