// Package dialer connects to a name the way RFC 8305 (Happy Eyeballs v2)
// says, over every healthy link: it races (destination address, source
// link) pairs, IPv6 and IPv4 interleaved, starting a new attempt every
// 250 ms or as soon as one fails, and keeps the first connection made. A
// dead address or a dead link therefore costs at most one stagger. MPTCP
// is asked for by default, so the connection also survives the loss of
// its link when the server speaks MPTCP.
//
// The links come from the caller, or from a running multihome daemon's
// API ([LinksFromAPI]): the links that accept new flows, with their
// interface addresses; the daemon's source rules route each attempt out
// of its link.
package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// RFC 8305 delays.
const (
	// DefaultDelay is the Connection Attempt Delay (§5): 250 ms.
	DefaultDelay = 250 * time.Millisecond
	// MinDelay is its floor (§5): 100 ms.
	MinDelay = 100 * time.Millisecond
	// ResolutionDelay is how long IPv4 answers wait for IPv6 ones (§3).
	ResolutionDelay = 50 * time.Millisecond
)

// Link is a source to connect from: one address per family (either may
// be invalid: the link has none of that family).
type Link struct {
	Name         string
	Addr4, Addr6 netip.Addr
}

// Dialer dials names over several links. The zero value dials with the
// kernel's choice of source, 250 ms apart, with MPTCP.
type Dialer struct {
	// Links are the sources to race, in order of preference; none: the
	// kernel picks the source.
	Links []Link
	// Delay between two attempts (DefaultDelay if 0; at least MinDelay).
	Delay time.Duration
	// Timeout bounds the whole dial (none if 0, besides ctx).
	Timeout time.Duration
	// NoMPTCP dials plain TCP.
	NoMPTCP bool
	// Lookup resolves a host name for "ip4" or "ip6" (default:
	// net.DefaultResolver.LookupNetIP).
	Lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// DialFunc makes one attempt with d (default d.DialContext); tests use
	// it to dial from a network namespace.
	DialFunc func(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error)
}

// Attempt is one (destination, source link) pair.
type Attempt struct {
	Dst  netip.AddrPort
	Link string // "" for the kernel's choice
	src  netip.Addr
}

// DialContext connects to address ("host:port"; network "tcp", "tcp4" or
// "tcp6").
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dialer: bad port %q", portStr)
	}
	addrs, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	attempts := Plan(addrs, uint16(port), d.Links)
	if len(attempts) == 0 {
		return nil, fmt.Errorf("dialer: %s: no link can reach any of %v", address, addrs)
	}
	return d.race(ctx, attempts)
}

// resolve looks up both families at once; an IPv4 answer that comes
// first waits ResolutionDelay for the IPv6 one (RFC 8305 §3).
func (d *Dialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	lookup := d.Lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupNetIP
	}
	fams := []string{"ip6", "ip4"}
	switch network {
	case "tcp4":
		fams = []string{"ip4"}
	case "tcp6":
		fams = []string{"ip6"}
	}
	type answer struct {
		fam   string
		addrs []netip.Addr
		err   error
	}
	ch := make(chan answer, len(fams))
	for _, f := range fams {
		go func() {
			a, err := lookup(ctx, f, host)
			ch <- answer{f, a, err}
		}()
	}
	var v4, v6 []netip.Addr
	var errs []error
	var wait <-chan time.Time
	for got := 0; got < len(fams); got++ {
		select {
		case a := <-ch:
			errs = append(errs, a.err)
			if a.fam == "ip6" {
				v6 = a.addrs
			} else {
				v4 = a.addrs
				if len(fams) == 2 && got == 0 && len(v4) > 0 {
					wait = time.After(ResolutionDelay)
				}
			}
			if len(v6) > 0 {
				got = len(fams) // IPv6 answered: go
			}
		case <-wait:
			got = len(fams)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := append(v6, v4...)
	if len(out) == 0 {
		return nil, fmt.Errorf("dialer: resolve %s: %w", host, errors.Join(errs...))
	}
	for i := range out {
		out[i] = out[i].Unmap()
	}
	return out, nil
}

// Plan orders the attempts: destinations with the families interleaved
// (IPv6 first, RFC 8305 §4), and for each destination every link with an
// address of its family, rotated so that consecutive attempts also
// change link: a dead address and a dead link each cost one stagger.
func Plan(addrs []netip.Addr, port uint16, links []Link) []Attempt {
	var v6, v4 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	var order []netip.Addr
	for i := 0; i < len(v6) || i < len(v4); i++ {
		if i < len(v6) {
			order = append(order, v6[i])
		}
		if i < len(v4) {
			order = append(order, v4[i])
		}
	}
	var out []Attempt
	for i, a := range order {
		dst := netip.AddrPortFrom(a, port)
		if len(links) == 0 {
			out = append(out, Attempt{Dst: dst})
			continue
		}
		for k := range links {
			l := links[(i+k)%len(links)]
			src := l.Addr4
			if a.Is6() {
				src = l.Addr6
			}
			if src.IsValid() {
				out = append(out, Attempt{Dst: dst, Link: l.Name, src: src})
			}
		}
	}
	return out
}

// race runs the attempts Delay apart (the next one at once when one
// fails) and returns the first connection; the others are cancelled or
// closed.
func (d *Dialer) race(ctx context.Context, attempts []Attempt) (net.Conn, error) {
	delay := d.Delay
	if delay == 0 {
		delay = DefaultDelay
	}
	delay = max(delay, MinDelay)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(attempts))
	next, running := 0, 0
	var errs []error
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := func() {
		a := attempts[next]
		next++
		running++
		go func() {
			c, err := d.attempt(ctx, a)
			if err != nil {
				err = fmt.Errorf("%s via %s: %w", a.Dst, orKernel(a.Link), err)
			}
			results <- result{c, err}
		}()
	}
	for {
		select {
		case <-timer.C:
			if next < len(attempts) {
				start()
				timer.Reset(delay)
			}
		case r := <-results:
			running--
			if r.err == nil {
				cancel()
				go drain(results, running)
				return r.c, nil
			}
			errs = append(errs, r.err)
			if next < len(attempts) {
				start()
				timer.Reset(delay)
			} else if running == 0 {
				return nil, fmt.Errorf("dialer: every attempt failed: %w", errors.Join(errs...))
			}
		case <-ctx.Done():
			go drain(results, running)
			return nil, ctx.Err()
		}
	}
}

type result struct {
	c   net.Conn
	err error
}

// drain closes the connections of the n attempts still running when the
// race was decided, as they end.
func drain(results <-chan result, n int) {
	for range n {
		if r := <-results; r.c != nil {
			r.c.Close()
		}
	}
}

func orKernel(link string) string {
	if link == "" {
		return "the kernel's choice"
	}
	return "link " + link
}

func (d *Dialer) attempt(ctx context.Context, a Attempt) (net.Conn, error) {
	nd := &net.Dialer{}
	if !d.NoMPTCP {
		nd.SetMultipathTCP(true)
	}
	if a.src.IsValid() {
		nd.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.src, 0))
	}
	dial := d.DialFunc
	if dial == nil {
		dial = func(ctx context.Context, nd *net.Dialer, network, address string) (net.Conn, error) {
			return nd.DialContext(ctx, network, address)
		}
	}
	return dial(ctx, nd, "tcp", a.Dst.String())
}
