package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Cache bounds of a Resolver: an answer is kept for its TTL (the smallest
// of the records used), at least MinTTL and at most MaxTTL; a negative
// answer (no such name, or no address of the asked type) for its SOA's
// negative TTL (RFC 2308) within [MinTTL, MaxNegativeTTL], NegativeTTL
// without an SOA; a failure of every server until FailureTTL after the
// lookup started (a lookup whose servers all timed out is retried at
// once; one whose servers fail fast, at most once per FailureTTL).
const (
	MinTTL         = time.Second
	MaxTTL         = 5 * time.Minute
	NegativeTTL    = 5 * time.Second
	MaxNegativeTTL = 30 * time.Second
	FailureTTL     = time.Second
)

// DefaultQueryTimeout bounds one query to one server (UDP, then TCP when
// the answer is truncated).
const DefaultQueryTimeout = time.Second

// ErrNoSuchHost is a resolver's NXDOMAIN answer.
var ErrNoSuchHost = errors.New("no such host")

// ErrNoAddress is an answer without any address of either family.
var ErrNoAddress = errors.New("no address")

// ResolveError is a failure to resolve a probe target's host name.
type ResolveError struct {
	Host      string
	Interface string // "" when unbound
	// Failures are the servers asked and what went wrong with each, in
	// the order they were asked; Err is the last one's error.
	Failures []ServerError
}

// ServerError is one server's failure.
type ServerError struct {
	Server netip.AddrPort
	Err    error
}

// Error reads "resolve web.example via 198.51.100.53 on wan1: timeout";
// with several servers "via A, B on wan1: timeout" when they failed alike,
// else "via A on wan1: timeout; via B: rcode SERVFAIL".
func (e *ResolveError) Error() string {
	if len(e.Failures) == 0 {
		return "resolve " + e.Host + ": failed"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "resolve %s via ", e.Host)
	on := ""
	if e.Interface != "" {
		on = " on " + e.Interface
	}
	alike := true
	for _, f := range e.Failures[1:] {
		alike = alike && fmt.Sprint(f.Err) == fmt.Sprint(e.Failures[0].Err)
	}
	if alike {
		for i, f := range e.Failures {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(serverText(f.Server))
		}
		fmt.Fprintf(&b, "%s: %v", on, e.Failures[0].Err)
		return b.String()
	}
	for i, f := range e.Failures {
		if i > 0 {
			fmt.Fprintf(&b, "; via %s: %v", serverText(f.Server), f.Err)
			continue
		}
		fmt.Fprintf(&b, "%s%s: %v", serverText(f.Server), on, f.Err)
	}
	return b.String()
}

// Unwrap returns the last server's error (ErrTimeout, ErrNoSuchHost...).
func (e *ResolveError) Unwrap() error {
	if len(e.Failures) == 0 {
		return nil
	}
	return e.Failures[len(e.Failures)-1].Err
}

func serverText(s netip.AddrPort) string {
	if s.Port() == 53 {
		return s.Addr().String()
	}
	return s.String()
}

// Resolver resolves host names through one link: it asks the link's own
// DNS servers with sockets bound like the probes (interface, mark, source
// address), over UDP, again over TCP when the answer is truncated. The
// servers are tried in order, starting with the one that answered last,
// until one answers (NOERROR or NXDOMAIN); SERVFAIL, REFUSED, timeouts
// and network errors move on to the next one. Answers are cached per
// name and type (see MinTTL). One lookup per name and type is in flight
// at a time: concurrent probes wait for it, and it runs to its own end
// (QueryTimeout per server) even when the probe that started it gives up,
// so its answer serves the next probes. A lookup runs in the network
// namespace of the probe that started it (which may be a thread's own,
// see netns.Do).
//
// A Resolver is safe for concurrent use. Its zero value is not usable:
// use NewResolver.
type Resolver struct {
	servers []netip.AddrPort
	// QueryTimeout bounds one query to one server (default
	// DefaultQueryTimeout). Set it before the first lookup.
	QueryTimeout time.Duration
	// now is the clock (tests replace it).
	now func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]*cacheEntry
	first int // the server that answered last
}

type cacheKey struct {
	name  string // fully qualified, lower case
	qtype uint16
}

// cacheEntry is one lookup: pending until done is closed, then valid
// until expires.
type cacheEntry struct {
	done    chan struct{}
	addrs   []netip.Addr
	err     error // *ResolveError
	expires time.Time
}

// NewResolver returns a resolver asking servers, in order.
func NewResolver(servers ...netip.AddrPort) *Resolver {
	return &Resolver{
		servers: slices.Clone(servers),
		now:     time.Now,
		cache:   map[cacheKey]*cacheEntry{},
	}
}

// Servers returns the resolver's servers.
func (r *Resolver) Servers() []netip.AddrPort { return slices.Clone(r.servers) }

// Lookup returns an address of host. It asks for the family b has a
// source address for first (IPv4 when it has both or neither), then for
// the other one when the first has no address.
func (r *Resolver) Lookup(ctx context.Context, b Binding, host string) (netip.Addr, error) {
	if len(r.servers) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no resolvers for the link", host)
	}
	if _, ok := dns.IsDomainName(host); !ok {
		return netip.Addr{}, fmt.Errorf("resolve %s: not a domain name", host)
	}
	order := []uint16{dns.TypeA, dns.TypeAAAA}
	if !b.Source4.IsValid() && b.Source6.IsValid() {
		order = []uint16{dns.TypeAAAA, dns.TypeA}
	}
	var noAddr error
	for _, qt := range order {
		addrs, err := r.lookup(ctx, b, host, qt)
		if err != nil {
			var re *ResolveError
			if errors.As(err, &re) && errors.Is(err, ErrNoAddress) {
				noAddr = err
				continue
			}
			return netip.Addr{}, err
		}
		return addrs[0], nil
	}
	return netip.Addr{}, noAddr
}

// lookup returns the addresses of one type, from the cache or from a
// lookup it starts or joins.
func (r *Resolver) lookup(ctx context.Context, b Binding, host string, qtype uint16) ([]netip.Addr, error) {
	key := cacheKey{strings.ToLower(dns.Fqdn(host)), qtype}
	r.mu.Lock()
	e := r.cache[key]
	if e == nil || e.expired(r.now()) {
		e = &cacheEntry{done: make(chan struct{})}
		r.cache[key] = e
		r.pruneLocked()
		ns, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ns = nil // no procfs: stay in the process's namespace
		}
		go func() {
			if ns != nil {
				defer ns.Close()
				if err := enterNS(ns); err != nil {
					e.err = fmt.Errorf("resolve %s: %w", host, err)
					r.mu.Lock()
					e.expires = r.now().Add(FailureTTL)
					close(e.done)
					r.mu.Unlock()
					return
				}
			}
			r.fetch(b, host, key, e)
		}()
	}
	r.mu.Unlock()
	select {
	case <-e.done:
		return e.addrs, e.err
	case <-ctx.Done():
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrTimeout
		}
		re := &ResolveError{Host: host, Interface: b.Interface}
		for _, s := range r.servers {
			re.Failures = append(re.Failures, ServerError{Server: s, Err: err})
		}
		return nil, re
	}
}

func (e *cacheEntry) expired(now time.Time) bool {
	select {
	case <-e.done:
		return !now.Before(e.expires)
	default:
		return false // pending
	}
}

// pruneLocked drops expired entries when the cache has grown: probe
// targets are few, so this is rare.
func (r *Resolver) pruneLocked() {
	if len(r.cache) < 64 {
		return
	}
	now := r.now()
	for k, e := range r.cache {
		if e.expired(now) {
			delete(r.cache, k)
		}
	}
}

// enterNS moves the calling goroutine into the network namespace ns (the
// namespace of the probe that started a lookup, see netns.Do) when it is
// not there already: the lookup's sockets are then opened where the
// probe's are. A thread that changed namespace stays locked, so it is
// discarded when the goroutine ends.
func enterNS(ns *os.File) error {
	runtime.LockOSThread()
	var want, have unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &want); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace: %w", err)
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &have); err == nil && have.Ino == want.Ino && have.Dev == want.Dev {
		runtime.UnlockOSThread()
		return nil
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace: %w", err)
	}
	return nil
}

// fetch asks the servers in turn and completes e.
func (r *Resolver) fetch(b Binding, host string, key cacheKey, e *cacheEntry) {
	r.mu.Lock()
	first := r.first
	start := r.now()
	r.mu.Unlock()
	re := &ResolveError{Host: host, Interface: b.Interface}
	var ttl time.Duration
	var err error
	for n := range r.servers {
		i := (first + n) % len(r.servers)
		srv := r.servers[i]
		var addrs []netip.Addr
		addrs, ttl, err = r.query(b, srv, key)
		if err == nil || errors.Is(err, ErrNoSuchHost) || errors.Is(err, ErrNoAddress) {
			r.mu.Lock()
			r.first = i
			r.mu.Unlock()
			e.addrs = addrs
			if err != nil {
				re.Failures = []ServerError{{Server: srv, Err: err}}
			}
			break
		}
		re.Failures = append(re.Failures, ServerError{Server: srv, Err: err})
	}
	r.mu.Lock()
	e.expires = r.now().Add(ttl)
	if err != nil {
		e.err = re
		if ttl == 0 {
			e.expires = start.Add(FailureTTL)
		}
	}
	close(e.done)
	r.mu.Unlock()
}

// query asks one server. It returns the addresses and how long to keep
// them; or ErrNoSuchHost or ErrNoAddress with how long to keep that; or
// another error.
func (r *Resolver) query(b Binding, srv netip.AddrPort, key cacheKey) ([]netip.Addr, time.Duration, error) {
	to := r.QueryTimeout
	if to <= 0 {
		to = DefaultQueryTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), to)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(key.name, key.qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	dst := srv.Addr()
	resp, err := r.exchange(ctx, b, dst, srv, m, false)
	if err == nil && resp.Truncated {
		resp, err = r.exchange(ctx, b, dst, srv, m, true)
	}
	if err != nil {
		return nil, 0, classify(err, ctx)
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, key.name) || resp.Question[0].Qtype != key.qtype {
		return nil, 0, errors.New("answer to another question")
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, negativeTTL(resp), ErrNoSuchHost
	default:
		return nil, 0, fmt.Errorf("rcode %s", dns.RcodeToString[resp.Rcode])
	}
	addrs, ttl := answerAddrs(resp, key)
	if len(addrs) == 0 {
		return nil, negativeTTL(resp), ErrNoAddress
	}
	return addrs, min(max(ttl, MinTTL), MaxTTL), nil
}

// exchange sends m to srv bound to the link and returns the answer.
func (r *Resolver) exchange(ctx context.Context, b Binding, dst netip.Addr, srv netip.AddrPort, m *dns.Msg, tcp bool) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", UDPSize: 1232}
	if tcp {
		c.Net = "tcp"
	}
	c.Dialer = b.dialer(dst, tcp)
	if dst.IsLinkLocalUnicast() {
		c.Dialer.LocalAddr = nil // the interface binding is enough
	}
	resp, _, err := c.ExchangeContext(ctx, m, srv.String())
	return resp, err
}

// answerAddrs follows the CNAME chain from the question's name and
// returns the addresses of the asked type at its end, with the smallest
// TTL of the records used.
func answerAddrs(resp *dns.Msg, key cacheKey) ([]netip.Addr, time.Duration) {
	name := key.name
	ttl := uint32(1<<32 - 1)
	for range 8 { // CNAME hops
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next = c.Target
				ttl = min(ttl, c.Hdr.Ttl)
				break
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	var addrs []netip.Addr
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, name) {
			continue
		}
		var a netip.Addr
		switch rr := rr.(type) {
		case *dns.A:
			if key.qtype == dns.TypeA {
				a, _ = netip.AddrFromSlice(rr.A.To4())
			}
		case *dns.AAAA:
			if key.qtype == dns.TypeAAAA {
				a, _ = netip.AddrFromSlice(rr.AAAA.To16())
				if a.Is4In6() {
					a = netip.Addr{} // not an IPv6 destination
				}
			}
		}
		if a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
			ttl = min(ttl, rr.Header().Ttl)
		}
	}
	return addrs, time.Duration(ttl) * time.Second
}

// negativeTTL is how long to keep a negative answer: the SOA's TTL or
// minimum, whichever is smaller (RFC 2308), within [MinTTL,
// MaxNegativeTTL]; NegativeTTL without an SOA.
func negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			d := time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			return min(max(d, MinTTL), MaxNegativeTTL)
		}
	}
	return NegativeTTL
}
