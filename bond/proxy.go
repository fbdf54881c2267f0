package bond

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/dialer"
)

// ProxyOptions configure the gateway's transparent proxy (config.Bond).
type ProxyOptions struct {
	Aggregator netip.AddrPort
	Key        []byte
	MaxConns   int
	// DialTimeout bounds the connection to the aggregator (and its
	// answer) and a fallback connection to the destination.
	DialTimeout time.Duration
	IdleTimeout time.Duration
	// CheckInterval is how often the aggregator is tried while it is
	// considered down (and checked while up).
	CheckInterval time.Duration
	// Links are the sources the first subflow to the aggregator may
	// start from, best first: the links that take new flows (nil: the
	// kernel's choice).
	Links func() []dialer.Link
	// Fallback dials the destination directly, for connections that
	// cannot be bonded (aggregator unreachable): the rule's normal
	// policy. Nil: such connections are refused.
	Fallback func(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
}

// Proxy takes the LAN connections the outbound ruleset redirects to it
// and relays each to its original destination over one MPTCP connection
// to the aggregator, or directly (Fallback) while the aggregator is
// unreachable.
type Proxy struct {
	opts atomic.Pointer[ProxyOptions]
	log  *slog.Logger
	sem  chan struct{}
	up   atomic.Bool

	mu    sync.Mutex
	conns map[*net.TCPConn]*subflowBytes // live aggregator connections

	active   prometheus.Gauge
	total    *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	aggUp    prometheus.Gauge
	linkByte *prometheus.CounterVec
	linkOf   func(netip.Addr) string
}

// NewProxy returns a proxy. linkOf names the link of a local address
// (for the per-link byte counts; nil: not counted).
func NewProxy(opts ProxyOptions, linkOf func(netip.Addr) string, log *slog.Logger) *Proxy {
	ns, sub := "multihome", "bond"
	p := &Proxy{
		log: log, sem: make(chan struct{}, max(opts.MaxConns, 1)), conns: map[*net.TCPConn]*subflowBytes{}, linkOf: linkOf,
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "LAN connections being relayed through the aggregator."}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "connections_total",
			Help: "Redirected LAN connections by result: bonded, fallback (aggregator unreachable: direct), unreachable (destination failed), refused (not redirected, over max_conns or no fallback)."}, []string{"result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total",
			Help: "Bytes relayed for bonded connections, by direction: up (LAN to destination), down."}, []string{"direction"}),
		aggUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "aggregator_up",
			Help: "1 while the aggregator answers, 0 while bonded rules fall back to their policy."}),
		linkByte: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "link_bytes_total",
			Help: "Bytes of bonded connections per link (the subflows' local addresses), by direction: up (acked by the aggregator), down (received)."}, []string{"link", "direction"}),
	}
	p.opts.Store(&opts)
	p.up.Store(true)
	p.aggUp.Set(1)
	return p
}

// Collectors returns the proxy's Prometheus collectors.
func (p *Proxy) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.active, p.total, p.bytes, p.aggUp, p.linkByte}
}

func (p *Proxy) o() *ProxyOptions { return p.opts.Load() }

// SetOptions replaces the options (a reload); MaxConns keeps its first
// value. Connections already relayed keep what they had.
func (p *Proxy) SetOptions(opts ProxyOptions) { p.opts.Store(&opts) }

// AggregatorUp reports whether the aggregator is considered reachable.
func (p *Proxy) AggregatorUp() bool { return p.up.Load() }

func (p *Proxy) setUp(up bool, why error) {
	if p.up.Swap(up) == up {
		return
	}
	if up {
		p.aggUp.Set(1)
		p.log.Info("aggregator reachable: bonding", "aggregator", p.o().Aggregator)
	} else {
		p.aggUp.Set(0)
		p.log.Warn("aggregator unreachable: bonded rules fall back to their policy", "aggregator", p.o().Aggregator, "err", why)
	}
}

// Serve accepts redirected connections on lns until ctx ends, and checks
// the aggregator every CheckInterval.
func (p *Proxy) Serve(ctx context.Context, lns ...net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { <-ctx.Done(); ln.Close() }()
		go func() { errc <- p.accept(ctx, ln) }()
	}
	go p.check(ctx)
	go p.sampleEvery(time.Second, ctx.Done())
	var err error
	for range lns {
		if e := <-errc; e != nil && err == nil {
			err = e
			cancel()
		}
	}
	return err
}

func (p *Proxy) accept(ctx context.Context, ln net.Listener) error {
	return serve(ctx, ln, p.sem,
		func(c net.Conn) {
			p.total.WithLabelValues("refused").Inc()
			c.(*net.TCPConn).SetLinger(0)
		},
		func(c net.Conn) { p.handle(ctx, c.(*net.TCPConn)) })
}

// check tries the aggregator: every CheckInterval while it is down, to
// bring bonding back; while up, to notice an aggregator gone quiet before
// a LAN connection has to.
func (p *Proxy) check(ctx context.Context) {
	t := time.NewTicker(p.o().CheckInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := p.dialAggregator(ctx)
		if err != nil {
			fails++
			if fails >= 2 || !p.up.Load() {
				p.setUp(false, err)
			}
			continue
		}
		c.Close()
		fails = 0
		p.setUp(true, nil)
	}
}

// dialAggregator opens an MPTCP connection to the aggregator. Its first
// subflow races the links that take new flows (Happy Eyeballs, package
// dialer), so a dead link, even the main table's default, costs at most
// one stagger; the path manager's endpoints then add the other links.
func (p *Proxy) dialAggregator(ctx context.Context) (*net.TCPConn, error) {
	o := p.o()
	var links []dialer.Link
	if o.Links != nil {
		links = o.Links()
	}
	d := &dialer.Dialer{Links: links, Timeout: o.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", o.Aggregator.String())
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetKeepAlive(true)
	tc.SetKeepAlivePeriod(10 * time.Second)
	return tc, nil
}

// handle relays one redirected connection.
func (p *Proxy) handle(ctx context.Context, lan *net.TCPConn) {
	dst, err := OriginalDst(lan)
	local, _ := netip.ParseAddrPort(lan.LocalAddr().String())
	if err != nil || dst.Addr().Unmap() == local.Addr().Unmap() && dst.Port() == local.Port() {
		// Not redirected: someone connected to the proxy's port itself.
		p.total.WithLabelValues("refused").Inc()
		lan.SetLinger(0)
		lan.Close()
		return
	}
	if p.up.Load() {
		agg, err := p.bond(ctx, dst)
		switch {
		case err == nil:
			p.total.WithLabelValues("bonded").Inc()
			p.relayBonded(lan, agg)
			return
		case errors.Is(err, errUnreachable):
			p.total.WithLabelValues("unreachable").Inc()
			lan.SetLinger(0)
			lan.Close()
			return
		default:
			p.setUp(false, err)
		}
	}
	if p.o().Fallback == nil {
		p.total.WithLabelValues("refused").Inc()
		lan.SetLinger(0)
		lan.Close()
		return
	}
	fctx, cancel := context.WithTimeout(ctx, p.o().DialTimeout)
	out, err := p.o().Fallback(fctx, dst)
	cancel()
	if err != nil {
		p.total.WithLabelValues("unreachable").Inc()
		lan.SetLinger(0)
		lan.Close()
		return
	}
	p.total.WithLabelValues("fallback").Inc()
	Relay(lan, out, p.o().IdleTimeout, nil, nil)
}

var errUnreachable = errors.New("bond: the aggregator could not reach the destination")

// bond opens an MPTCP connection to the aggregator for dst and waits for
// its answer.
func (p *Proxy) bond(ctx context.Context, dst netip.AddrPort) (*net.TCPConn, error) {
	agg, err := p.dialAggregator(ctx)
	if err != nil {
		return nil, err
	}
	h, err := NewHeader(dst)
	if err != nil {
		agg.Close()
		return nil, err
	}
	agg.SetDeadline(time.Now().Add(p.o().DialTimeout + time.Second))
	var st [1]byte
	if _, err = agg.Write(h.Marshal(p.o().Key)); err == nil {
		_, err = io.ReadFull(agg, st[:])
	}
	if err != nil {
		agg.Close()
		return nil, fmt.Errorf("bond: aggregator handshake: %w", err)
	}
	if st[0] != StatusOK {
		agg.Close()
		return nil, errUnreachable
	}
	agg.SetDeadline(time.Time{})
	return agg, nil
}

func (p *Proxy) relayBonded(lan, agg *net.TCPConn) {
	sb := &subflowBytes{}
	p.mu.Lock()
	p.conns[agg] = sb
	p.mu.Unlock()
	p.active.Inc()
	up, down := p.bytes.WithLabelValues("up"), p.bytes.WithLabelValues("down")
	// The last bytes per link are counted before the connection closes.
	relay(lan, agg, p.o().IdleTimeout, func(n int) { up.Add(float64(n)) }, func(n int) { down.Add(float64(n)) }, p.sample)
	p.active.Dec()
	p.mu.Lock()
	delete(p.conns, agg)
	p.mu.Unlock()
}
