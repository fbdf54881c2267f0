package ha

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A child that exits is restarted with back-off, its output is logged
// line by line, and it is stopped when the context ends.
func TestChildRestartsAndStops(t *testing.T) {
	old := minBackoff
	minBackoff = 10 * time.Millisecond
	t.Cleanup(func() { minBackoff = old })
	var buf syncBuf
	log := slog.New(slog.NewTextHandler(&buf, nil))
	c := &child{name: "flaky", log: log, argv: []string{"sh", "-c", "echo started; exit 3"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.status().Restarts < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	st := c.status()
	if st.Restarts < 3 || !strings.Contains(st.LastExit, "exit status 3") {
		t.Errorf("status %+v: want ≥ 3 restarts after exit status 3", st)
	}
	if out := buf.String(); !strings.Contains(out, `msg=started program=flaky`) || !strings.Contains(out, "child exited: restarting") {
		t.Errorf("log:\n%s", out)
	}

	long := &child{name: "long", log: log, argv: []string{"sleep", "60"}}
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { long.run(ctx); close(done) }()
	for !long.status().Running && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(stopGrace + 2*time.Second):
		t.Fatal("child not stopped")
	}
	if st := long.status(); st.Running || st.Restarts != 0 || time.Since(start) > time.Second {
		t.Errorf("after stop: %+v, took %v", st, time.Since(start))
	}
}
