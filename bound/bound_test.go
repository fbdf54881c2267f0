package bound

import (
	"context"
	"errors"
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
