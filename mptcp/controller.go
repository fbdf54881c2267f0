package mptcp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ifwatch"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// Controller keeps the path manager of the namespace it runs in in step
// with the links' health: the daemon's mptcp subsystem. Its Run goroutine
// owns the path manager and the links' view; Update hands it a new
// config.
type Controller struct {
	log *slog.Logger
	src monitor.Source
	// dial opens the path manager (Dial; a fake in tests).
	dial func() (Kernel, error)
	// interfaces reads a link's interface index and global addresses
	// (from the kernel; a fake in tests).
	interfaces func(name string) (int32, []netip.Addr, error)

	// ns is the namespace of WithNetns, for the address subscription
	// (nil: the process's own).
	ns *vnetns.NsHandle

	mu     sync.Mutex
	cfg    *config.Config // the config in force, replaced by Update
	status *Status        // after the last apply; nil before the first
	kick   chan struct{}

	// closers release what options opened, when Run ends.
	closers []func()

	endpoints *prometheus.GaugeVec
	changes   *prometheus.CounterVec
	errors    prometheus.Counter
}

// Option configures a Controller.
type Option func(*Controller) error

// WithNetns makes the controller drive the path manager of the named
// network namespace (one `ip netns` knows) instead of the process's own,
// reading interfaces and following addresses there. For tests and the
// lab.
func WithNetns(name string) Option {
	return func(c *Controller) error {
		h, ns, err := netns.Open(name)
		if err != nil {
			return err
		}
		c.dial = func() (Kernel, error) {
			var k *Conn
			err := netns.Do(name, func() (err error) { k, err = Dial(); return err })
			return k, err
		}
		c.interfaces = func(ifname string) (int32, []netip.Addr, error) { return handleInterface(h, ifname) }
		c.ns = &ns
		c.closers = append(c.closers, func() { h.Close(); ns.Close() })
		return nil
	}
}

// New returns a controller for cfg's mptcp section (which must be set).
// Nothing touches the kernel until Run.
func New(cfg *config.Config, src monitor.Source, log *slog.Logger, opts ...Option) (*Controller, error) {
	c, err := newController(cfg, src, log)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) close() {
	for _, f := range c.closers {
		f()
	}
	c.closers = nil
}

func newController(cfg *config.Config, src monitor.Source, log *slog.Logger) (*Controller, error) {
	ns, sub := "multihome", "mptcp"
	return &Controller{
		log: log, src: src, cfg: cfg, kick: make(chan struct{}, 1),
		dial:       func() (Kernel, error) { return Dial() },
		interfaces: kernelInterface,
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "endpoints",
			Help: "MPTCP endpoints multihome keeps in the kernel, by link and flags (subflow, subflow backup, ...)."}, []string{"link", "flags"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "changes_total",
			Help: "Changes made to the kernel's MPTCP path manager, by operation (add, delete, change, limits)."}, []string{"op"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed path manager operations (retried at the next reconcile)."}),
	}, nil
}

// Collectors returns the controller's Prometheus collectors.
func (c *Controller) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.endpoints, c.changes, c.errors}
}

// Status returns the path manager as the last apply left it, and false
// before the first apply. It asks the kernel nothing.
func (c *Controller) Status() (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == nil {
		return Status{}, false
	}
	st := *c.status
	st.Endpoints = slices.Clone(st.Endpoints)
	st.Links = slices.Clone(st.Links)
	return st, true
}

// Update makes cfg the config in force; Run applies it at once.
func (c *Controller) Update(cfg *config.Config) error {
	c.mu.Lock()
	c.cfg = cfg
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func (c *Controller) config() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Run applies the desired endpoints on every link event, config update,
// address change and reconcile tick, until ctx ends; then it removes the
// endpoints it made.
func (c *Controller) Run(ctx context.Context) error {
	defer c.close()
	k, err := c.dial()
	if err != nil {
		return err
	}
	if cl, ok := k.(interface{ Close() error }); ok {
		defer cl.Close()
	}
	m := NewManager(k)
	events, stop := c.src.Subscribe()
	defer stop()
	status := map[string]monitor.Status{}
	for _, s := range c.src.Snapshot() {
		status[s.Link] = s
	}
	// Address changes, and a subscription made again (ifwatch).
	addrs := make(chan struct{}, 1)
	poke := func() {
		select {
		case addrs <- struct{}{}:
		default:
		}
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go ifwatch.Run(wctx, c.ns, c.log, ifwatch.Handler{
		Subscribed: func() error { poke(); return nil },
		Addr:       func(netlink.AddrUpdate) { poke() },
	}, nil)
	cfg := c.config()
	tick := time.NewTicker(cfg.MPTCP.Reconcile.D())
	defer tick.Stop()
	c.apply(m, cfg, status, "start")
	for {
		select {
		case <-ctx.Done():
			changes, err := m.Clear()
			c.logChanges(changes, err, "stop")
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			status[e.Link] = e.Status
			c.apply(m, cfg, status, e.Link+" "+e.Kind.String())
		case <-addrs:
			c.apply(m, cfg, status, "address change")
		case <-c.kick:
			cfg = c.config()
			tick.Reset(cfg.MPTCP.Reconcile.D())
			c.apply(m, cfg, status, "config")
		case <-tick.C:
			c.apply(m, cfg, status, "reconcile")
		}
	}
}

func (c *Controller) apply(m *Manager, cfg *config.Config, status map[string]monitor.Status, why string) {
	links := c.links(cfg, status)
	want := Desired(cfg, links)
	changes, err := m.Set(want)
	c.logChanges(changes, err, why)
	ifaces := map[string]string{}
	for _, name := range cfg.MPTCP.Links {
		if lc := cfg.LinkByName(name); lc != nil {
			ifaces[name] = lc.Interface
		}
	}
	st := statusOf(time.Now(), links, ifaces, want, m, err)
	c.mu.Lock()
	c.status = &st
	c.mu.Unlock()
	c.endpoints.Reset()
	for _, ep := range want.Endpoints {
		c.endpoints.WithLabelValues(want.Names[ep.ID], ep.Flags.String()).Inc()
	}
}

func (c *Controller) logChanges(changes []string, err error, why string) {
	for _, ch := range changes {
		op := strings.Fields(ch)
		name := op[0]
		if name == "endpoint" && len(op) > 1 {
			name = op[1]
		}
		c.changes.WithLabelValues(name).Inc()
		c.log.Info("mptcp path manager: "+ch, "why", why)
	}
	if err != nil {
		c.errors.Inc()
		c.log.Error("mptcp path manager", "why", why, "err", err)
	}
}

// links returns the mptcp section's links with their states, interface
// indexes and addresses (configured, else the interface's first global
// address of each family).
func (c *Controller) links(cfg *config.Config, status map[string]monitor.Status) []Link {
	var out []Link
	for _, name := range cfg.MPTCP.Links {
		lc := cfg.LinkByName(name)
		if lc == nil {
			continue
		}
		st := status[name]
		l := Link{Name: name, State: st.State, Admin: st.Admin, HoldDown: st.HoldDown, Addr4: lc.Address4, Addr6: lc.Address6}
		idx, addrs, err := c.interfaces(lc.Interface)
		if err != nil {
			c.log.Debug("mptcp: interface not readable", "link", name, "interface", lc.Interface, "err", err)
		}
		l.IfIndex = idx
		for _, a := range addrs {
			if a.Is4() && !l.Addr4.IsValid() {
				l.Addr4 = a
			}
			if a.Is6() && !l.Addr6.IsValid() {
				l.Addr6 = a
			}
		}
		out = append(out, l)
	}
	return out
}

// kernelInterface reads an interface's index and usable global addresses.
func kernelInterface(name string) (int32, []netip.Addr, error) {
	return handleInterface(nil, name)
}

// handleInterface is kernelInterface through h (nil: the process's
// namespace).
func handleInterface(h *netlink.Handle, name string) (int32, []netip.Addr, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	lk, err := h.LinkByName(name)
	if err != nil {
		return 0, nil, err
	}
	var out []netip.Addr
	addrs, err := h.AddrList(lk, netlink.FAMILY_ALL)
	if err != nil {
		return int32(lk.Attrs().Index), nil, err
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || ad.Scope != unix.RT_SCOPE_UNIVERSE || ad.Flags&(unix.IFA_F_DEPRECATED|unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		out = append(out, ip.Unmap())
	}
	return int32(lk.Attrs().Index), out, nil
}
