package bond

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AggregatorOptions configure an aggregator (config.Aggregate).
type AggregatorOptions struct {
	Key []byte
	// MaxConns bounds the connections relayed at once; more are closed
	// at once.
	MaxConns int
	// HeaderTimeout cuts a connection whose header is not complete in
	// time (garbage or a stalled client).
	HeaderTimeout time.Duration
	// DialTimeout bounds the connection to the destination.
	DialTimeout time.Duration
	// IdleTimeout closes a relayed connection quiet in both directions.
	IdleTimeout time.Duration
	// Window is the replay window (DefaultWindow if 0).
	Window time.Duration
}

// Aggregator accepts the gateways' MPTCP connections, checks each
// header and relays it to its destination.
type Aggregator struct {
	opts   AggregatorOptions
	log    *slog.Logger
	replay Replay
	sem    chan struct{}

	conns    prometheus.Gauge
	accepted *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

// NewAggregator returns an aggregator.
func NewAggregator(opts AggregatorOptions, log *slog.Logger) *Aggregator {
	ns, sub := "multihome", "aggregate"
	return &Aggregator{
		opts: opts, log: log, replay: Replay{Window: opts.Window}, sem: make(chan struct{}, max(opts.MaxConns, 1)),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Connections being relayed."}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "connections_total",
			Help: "Incoming connections by result: relayed, unreachable (destination failed), rejected (bad header, MAC, replay or timeout), limit (over max_conns)."}, []string{"result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total",
			Help: "Bytes relayed, by direction: up (gateway to destination), down."}, []string{"direction"}),
	}
}

// Collectors returns the aggregator's Prometheus collectors.
func (a *Aggregator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.conns, a.accepted, a.bytes}
}

// Listen opens an MPTCP listener (plain TCP clients are accepted too).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := &net.ListenConfig{}
	lc.SetMultipathTCP(true)
	return lc.Listen(ctx, "tcp", addr)
}

// Serve accepts connections on ln until ctx ends.
func (a *Aggregator) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	return serve(ctx, ln, a.sem,
		func(net.Conn) { a.accepted.WithLabelValues("limit").Inc() },
		func(c net.Conn) { a.handle(ctx, c) })
}

func (a *Aggregator) handle(ctx context.Context, c net.Conn) {
	c.SetDeadline(time.Now().Add(a.opts.HeaderTimeout))
	h, err := ParseHeader(c, a.opts.Key)
	if err == nil {
		err = a.replay.Check(h, time.Now())
	}
	if err != nil {
		// No answer: a prober learns nothing, not even that this is a
		// bond aggregator.
		a.accepted.WithLabelValues("rejected").Inc()
		a.log.Debug("rejected connection", "from", c.RemoteAddr(), "err", err)
		if tc, ok := c.(*net.TCPConn); ok && !errors.Is(err, io.EOF) {
			tc.SetLinger(0)
		}
		c.Close()
		return
	}
	d := net.Dialer{Timeout: a.opts.DialTimeout}
	dst, err := d.DialContext(ctx, "tcp", h.Dst.String())
	if err != nil {
		a.accepted.WithLabelValues("unreachable").Inc()
		a.log.Debug("destination unreachable", "dst", h.Dst, "err", err)
		c.Write([]byte{StatusFailed})
		c.Close()
		return
	}
	if _, err := c.Write([]byte{StatusOK}); err != nil {
		dst.Close()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	a.accepted.WithLabelValues("relayed").Inc()
	a.conns.Inc()
	defer a.conns.Dec()
	up, down := a.bytes.WithLabelValues("up"), a.bytes.WithLabelValues("down")
	Relay(c, dst, a.opts.IdleTimeout, func(n int) { up.Add(float64(n)) }, func(n int) { down.Add(float64(n)) })
}
