package bound

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCall: a call that outlives its bound is stopped, counted and
// reported as ErrTimeout; one ended by its caller's context is not.
func TestCall(t *testing.T) {
	before := TimeoutCount("test")
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	began := time.Now()
	err := Call(context.Background(), "test", 50*time.Millisecond, hang)
	if !errors.Is(err, ErrTimeout) || time.Since(began) > 2*time.Second {
		t.Fatalf("hung call: %v after %v, want ErrTimeout after ~50ms", err, time.Since(began))
	}
	if got := TimeoutCount("test") - before; got != 1 {
		t.Errorf("timeouts counted: %v, want 1", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Call(ctx, "test", time.Minute, hang); errors.Is(err, ErrTimeout) {
		t.Errorf("a call cancelled by its caller reported as a timeout: %v", err)
	}
	if err := Call(context.Background(), "test", time.Minute, func(context.Context) error { return nil }); err != nil {
		t.Errorf("quick call: %v", err)
	}
	if got := TimeoutCount("test") - before; got != 1 {
		t.Errorf("timeouts counted: %v, want still 1", got)
	}
	Dropped("test", 3, "test")
	if got := DroppedCount("test"); got != 3 {
		t.Errorf("dropped: %v, want 3", got)
	}
}

// TestHandoff: the loop's answer comes back; a stopped loop fails at
// once with ErrStopped; nobody taking the request fails after the bound
// with ErrTimeout.
func TestHandoff(t *testing.T) {
	ch, stopped := make(chan int), make(chan struct{})
	reply := make(chan error, 1)
	go func() { v := <-ch; reply <- fmt.Errorf("got %d", v) }()
	if err := Handoff(ch, 7, reply, stopped, 5*time.Second); err == nil || err.Error() != "got 7" {
		t.Errorf("answered: %v", err)
	}
	close(stopped)
	began := time.Now()
	if err := Handoff(ch, 8, reply, stopped, 5*time.Second); !errors.Is(err, ErrStopped) || time.Since(began) > time.Second {
		t.Errorf("stopped: %v after %v, want ErrStopped at once", err, time.Since(began))
	}
	if err := Handoff(ch, 9, reply, make(chan struct{}), 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("nobody took it: %v, want ErrTimeout", err)
	}
}
