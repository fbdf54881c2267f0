package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/ifwatch"
)

// watcher follows the interfaces of the namespace (package ifwatch) and
// tells the loop about carrier and address changes, and wakes whoever
// asked for InterfaceChanges.
type watcher struct {
	log     *slog.Logger
	out     chan<- linkMsg
	changed func()         // wakes InterfaceChanges' receivers
	names   map[int]string // ifindex → name, for address updates
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
// subscriptions are in place (or failed: they are tried again).
func (w *watcher) run(ctx context.Context, ready chan struct{}) {
	w.names = map[int]string{}
	ifwatch.Run(ctx, nil, w.log, ifwatch.Handler{
		Subscribed: func() error { return w.list(ctx) },
		Link:       func(u netlink.LinkUpdate) { w.link(ctx, u) },
		Addr:       func(u netlink.AddrUpdate) { w.addr(ctx, u) },
	}, ready)
}

// list tells the loop every interface's carrier and addresses as they
// are now (subscribed first, then listed: nothing falls between the
// two). An interrupted dump fails the subscription, which lists again.
func (w *watcher) list(ctx context.Context) error {
	lks, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	w.names = map[int]string{}
	for _, lk := range lks {
		a := lk.Attrs()
		w.names[a.Index] = a.Name
		up, why := carrierOf(a.RawFlags, a.OperState, a.Name)
		w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: up, why: why}})
		v4, v6 := listAddrs(lk)
		w.send(ctx, linkMsg{iface: a.Name, addrs: &addrMsg{v4: v4, v6: v6}})
	}
	w.changed()
	return nil
}

func (w *watcher) link(ctx context.Context, u netlink.LinkUpdate) {
	w.changed()
	a := u.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		delete(w.names, a.Index)
		w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: false, why: fmt.Sprintf("interface %s removed", a.Name)}})
		return
	}
	w.names[a.Index] = a.Name
	up, why := carrierOf(u.IfInfomsg.Flags, a.OperState, a.Name)
	w.send(ctx, linkMsg{iface: a.Name, carrier: &carrierMsg{up: up, why: why}})
}

// addr re-reads the addresses of the interface an address update is
// about.
func (w *watcher) addr(ctx context.Context, u netlink.AddrUpdate) {
	w.changed()
	name, ok := w.names[u.LinkIndex]
	var lk netlink.Link
	var err error
	if ok {
		lk, err = netlink.LinkByName(name)
	} else {
		lk, err = netlink.LinkByIndex(u.LinkIndex)
	}
	if err != nil {
		return // gone already; its link update follows
	}
	w.names[lk.Attrs().Index] = lk.Attrs().Name
	v4, v6 := listAddrs(lk)
	w.send(ctx, linkMsg{iface: lk.Attrs().Name, addrs: &addrMsg{v4: v4, v6: v6}})
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
