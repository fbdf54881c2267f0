package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// watcher is the daemon's one netlink subscription to the interfaces of
// the namespace: it tells the loop about carrier and address changes and
// wakes whoever asked for InterfaceChanges. When a subscription fails
// (receive error, overrun) it subscribes again and re-lists everything,
// so no change is lost for good.
//
// The listing is a plain dump request after subscribing, not the
// subscriptions' ListExisting option: vishvananda/netlink sends that
// request to the socket's own address, multicast groups included, so as
// root the kernel also broadcasts the request to every other subscriber
// of those groups in the namespace. They receive a message from a
// user-space port and report "Wrong sender portid" (vishvananda/netlink
// issue 786); that is what made daemon/addrs, then a second subscriber,
// drop its subscription right after every start.
type watcher struct {
	log     *slog.Logger
	out     chan<- linkMsg
	changed func() // wakes InterfaceChanges' receivers
}

// carrierOf judges an interface's carrier from its flags and operational
// state: administratively up, lower layer up, and not reported down.
func carrierOf(flags uint32, oper netlink.LinkOperState, iface string) (bool, string) {
	switch {
	case flags&unix.IFF_UP == 0:
		return false, fmt.Sprintf("interface %s is administratively down", iface)
	case flags&unix.IFF_LOWER_UP == 0,
		oper == netlink.OperDown, oper == netlink.OperLowerLayerDown, oper == netlink.OperNotPresent, oper == netlink.OperDormant:
		return false, fmt.Sprintf("carrier lost on %s", iface)
	}
	return true, ""
}

// run watches until ctx is done. ready is closed once the first
// subscriptions are in place.
func (w *watcher) run(ctx context.Context, ready chan struct{}) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		began := time.Now()
		err := w.session(ctx, func() {
			if first {
				close(ready)
				first = false
			}
		})
		if first {
			// Could not even subscribe: let the monitor start anyway
			// (it reads the interfaces once itself) and keep trying.
			close(ready)
			first = false
		}
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) > time.Minute {
			backoff = 100 * time.Millisecond // it had been working
		}
		w.log.Warn("netlink subscription failed: subscribing again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	if first {
		close(ready)
	}
}

// session runs one pair of subscriptions until one fails or ctx is done.
func (w *watcher) session(ctx context.Context, subscribed func()) error {
	done := make(chan struct{})
	lch := make(chan netlink.LinkUpdate, 256)
	ach := make(chan netlink.AddrUpdate, 256)
	errc := make(chan error, 1)
	report := func(err error) {
		if strings.HasPrefix(err.Error(), "Wrong sender portid") {
			// Another program's request broadcast to the group (see
			// watcher): dropped by the library, the socket is fine.
			w.log.Debug("netlink: ignored a message not from the kernel", "err", err)
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
		ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribe to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(ach, done, netlink.AddrSubscribeOptions{
		ErrorCallback: report, ReceiveBufferSize: 1 << 20,
	}); err != nil {
		return fmt.Errorf("subscribe to addresses: %w", err)
	}
	subscribed()
	// Subscribed first, then listed: nothing falls between the two.
	names := map[int]string{} // ifindex → name
	if err := w.list(ctx, names); err != nil {
		return err
	}
	w.changed()
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
			w.changed()
			a := u.Attrs()
			if u.Header.Type == unix.RTM_DELLINK {
				delete(names, a.Index)
				w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: false, why: fmt.Sprintf("interface %s removed", a.Name)}})
				continue
			}
			names[a.Index] = a.Name
			up, why := carrierOf(u.IfInfomsg.Flags, a.OperState, a.Name)
			w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: up, why: why}})
		case u, ok := <-ach:
			if !ok {
				return fmt.Errorf("address subscription closed")
			}
			w.changed()
			name, ok := names[u.LinkIndex]
			var lk netlink.Link
			var err error
			if ok {
				lk, err = netlink.LinkByName(name)
			} else {
				lk, err = netlink.LinkByIndex(u.LinkIndex)
			}
			if err != nil {
				continue // gone already; its link update follows
			}
			names[lk.Attrs().Index] = lk.Attrs().Name
			v4, v6 := listAddrs(lk)
			w.send(ctx, linkMsg{iface: lk.Attrs().Name, addrs: &addrMsg{v4: v4, v6: v6}})
		}
	}
}

// list tells the loop every interface's carrier and addresses as they
// are now. An interrupted dump fails the session, which lists again.
func (w *watcher) list(ctx context.Context, names map[int]string) error {
	lks, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, lk := range lks {
		a := lk.Attrs()
		names[a.Index] = a.Name
		up, why := carrierOf(a.RawFlags, a.OperState, a.Name)
		w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: up, why: why}})
		v4, v6 := listAddrs(lk)
		w.send(ctx, linkMsg{iface: a.Name, addrs: &addrMsg{v4: v4, v6: v6}})
	}
	return nil
}

func (w *watcher) send(ctx context.Context, m linkMsg) {
	select {
	case w.out <- m:
	case <-ctx.Done():
	}
}

// changes wakes the receivers of InterfaceChanges.
type changes struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (c *changes) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{} // read once: whatever changed before
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[chan struct{}]struct{}{}
	}
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

func (c *changes) signal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default: // one wake-up pending is enough
		}
	}
}
