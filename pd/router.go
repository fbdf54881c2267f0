package pd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// RFC 4861 section 10 host constants for Router Solicitations.
const (
	rtrSolicitationInterval = 4 * time.Second
	maxRtrSolicitations     = 3
)

var allRouters = netip.MustParseAddr("ff02::2")

// Router tracks the default router on a link from its Router
// Advertisements (RFC 4861 6.3.4): the link-local source of an
// advertisement with a non-zero router lifetime, until that lifetime ends
// or the router advertises lifetime 0. A link whose provider delegates a
// prefix by DHCPv6-PD normally also advertises its router this way, so
// the link's gateway6 need not be configured.
type Router struct {
	iface  string
	enter  func(fn func() error) error
	report func(netip.Addr)
	log    *slog.Logger

	cur     netip.Addr
	expires time.Time
}

// NewRouter returns a watcher of iface's routers; report is called from
// Run's goroutine with the router learned, or the invalid Addr when it
// is gone. enter, if set, runs fn where the interface lives.
func NewRouter(iface string, enter func(fn func() error) error, report func(netip.Addr), log *slog.Logger) *Router {
	if enter == nil {
		enter = func(fn func() error) error { return fn() }
	}
	return &Router{iface: iface, enter: enter, report: report, log: log}
}

// Run listens for advertisements (soliciting them at start, RFC 4861
// 6.3.7) until ctx ends.
func (r *Router) Run(ctx context.Context) {
	var c *ndp.Conn
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		err := r.enter(func() error {
			ifi, err := net.InterfaceByName(r.iface)
			if err != nil {
				return err
			}
			c, _, err = ndp.Listen(ifi, ndp.LinkLocal) // fails while the link-local address is tentative
			return err
		})
		if err == nil {
			break
		}
		r.log.Warn("router advertisements: cannot listen yet", "dev", r.iface, "err", err, "retry", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
	defer c.Close()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		r.log.Warn("router advertisements: ICMP filter", "dev", r.iface, "err", err)
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		r.log.Warn("router advertisements: hop limit", "dev", r.iface, "err", err)
	}
	go func() { <-ctx.Done(); c.SetReadDeadline(time.Now()) }()
	solicits, nextRS := 0, time.Now()
	for ctx.Err() == nil {
		now := time.Now()
		if r.cur.IsValid() && !now.Before(r.expires) {
			r.set(netip.Addr{}, time.Time{}, "router lifetime ended")
		}
		if !r.cur.IsValid() && solicits < maxRtrSolicitations && !now.Before(nextRS) {
			if err := c.WriteTo(&ndp.RouterSolicitation{}, nil, allRouters); err != nil {
				r.log.Debug("router solicitation", "dev", r.iface, "err", err)
			}
			solicits++
			nextRS = now.Add(rtrSolicitationInterval)
		}
		deadline := now.Add(time.Second)
		if r.cur.IsValid() && r.expires.Before(deadline) {
			deadline = r.expires
		}
		c.SetReadDeadline(deadline)
		m, cm, src, err := c.ReadFrom()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case err != nil:
			if ctx.Err() == nil {
				r.log.Debug("router advertisements: read", "dev", r.iface, "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		ra, ok := m.(*ndp.RouterAdvertisement)
		// RFC 4861 6.1.2: from a link-local source, hop limit 255
		if !ok || !src.Is6() || !src.IsLinkLocalUnicast() || (cm != nil && cm.HopLimit != ndp.HopLimit) {
			continue
		}
		r.seen(src.WithZone(""), ra.RouterLifetime)
	}
}

// seen applies one valid advertisement from src: the current router
// stays until it ends; another router is taken when there is none.
func (r *Router) seen(src netip.Addr, lifetime time.Duration) {
	switch {
	case src == r.cur && lifetime == 0:
		r.set(netip.Addr{}, time.Time{}, "router lifetime 0")
	case src == r.cur:
		r.expires = time.Now().Add(lifetime)
	case !r.cur.IsValid() && lifetime > 0:
		r.set(src, time.Now().Add(lifetime), "")
	}
}

func (r *Router) set(a netip.Addr, expires time.Time, why string) {
	old := r.cur
	r.cur, r.expires = a, expires
	if a.IsValid() {
		r.log.Info("router advertisements: gateway6 learned", "dev", r.iface, "gateway6", a, "lifetime", time.Until(expires).Round(time.Second))
	} else {
		r.log.Warn("router advertisements: gateway6 lost", "dev", r.iface, "was", old, "why", why)
	}
	r.report(a)
}
