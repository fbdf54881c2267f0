// Package bound keeps what could hang or grow without limit bounded: it
// runs calls that could hang (exec of nft and conntrackd, requests to the
// kernel) under
// a deadline and counts the ones that hit it, and it counts what bounded
// queues dropped. The counters are process-wide, served as
// multihome_bound_timeouts_total{call} and
// multihome_bound_dropped_total{queue}; each event is logged.
package bound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ErrTimeout is wrapped by the error of a call that hit its deadline.
var ErrTimeout = errors.New("timed out")

var (
	logger   atomic.Pointer[slog.Logger]
	timeouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "multihome_bound_timeouts_total",
		Help: "Calls that could hang (exec of nft and conntrackd, kernel requests) stopped at their deadline, by call.",
	}, []string{"call"})
	dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "multihome_bound_dropped_total",
		Help: "Items a bounded queue dropped (or merged into a later one) because its consumer fell behind, by queue.",
	}, []string{"queue"})
)

func init() {
	logger.Store(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// SetLogger sets where timeouts and drops are logged (the daemon's log).
func SetLogger(l *slog.Logger) { logger.Store(l) }

// Collectors returns the counters, to register on a registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{timeouts, dropped} }

// Call runs fn with a context that ends after d (or with ctx). If fn
// fails because d passed (not because ctx ended), the timeout is counted
// and logged and the error wraps ErrTimeout.
func Call(ctx context.Context, call string, d time.Duration, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := fn(cctx)
	if err == nil || ctx.Err() != nil || !errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return err
	}
	Timeout(call, d, err)
	return fmt.Errorf("%s %w after %v: %w", call, ErrTimeout, d, err)
}

// Timeout counts and logs a call that hit its deadline d elsewhere.
func Timeout(call string, d time.Duration, err error) {
	timeouts.WithLabelValues(call).Inc()
	logger.Load().Warn("call timed out: stopped it", "subsystem", "bound", "call", call, "after", d, "err", err)
}

// Dropped counts and logs n items a bounded queue dropped.
func Dropped(queue string, n int, why string) {
	if n <= 0 {
		return
	}
	dropped.WithLabelValues(queue).Add(float64(n))
	logger.Load().Warn("queue full: dropped items", "subsystem", "bound", "queue", queue, "dropped", n, "why", why)
}

// TimeoutCount and DroppedCount return a counter's value, for tests.
func TimeoutCount(call string) float64 { return value(timeouts.WithLabelValues(call)) }

// DroppedCount returns how many items queue dropped.
func DroppedCount(queue string) float64 { return value(dropped.WithLabelValues(queue)) }

func value(c prometheus.Counter) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	m := <-ch
	var pb dto.Metric
	_ = m.Write(&pb)
	return pb.GetCounter().GetValue()
}

// ErrStopped is returned by Handoff when the goroutine it hands to has
// ended.
var ErrStopped = errors.New("stopped: update not applied")

// Handoff gives req to the goroutine that owns some state and receives
// from ch (a subsystem's Run loop), and returns that goroutine's answer
// from reply. It fails at once with ErrStopped once stopped is closed
// (Run returned: a reload racing the daemon's stop must not wait for
// it), and with ErrTimeout when nobody takes req within d (Run never
// started).
func Handoff[T any](ch chan<- T, req T, reply <-chan error, stopped <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ch <- req:
		return <-reply
	case <-stopped:
		return ErrStopped
	case <-t.C:
		return fmt.Errorf("not running: update not applied: %w after %v", ErrTimeout, d)
	}
}
