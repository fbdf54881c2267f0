package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEventLogFrames: each entry's stream frame is encoded once, in the
// stream's format; readers get shared frames, filtered by link, and learn
// how many entries they lost when they fell a whole ring behind.
func TestEventLogFrames(t *testing.T) {
	l := newEventLog(3, 1)
	for i, link := range []string{"a", "b", "a", "b", "a"} {
		l.add(Entry{Kind: "state", Link: link, Reason: fmt.Sprint("r", i)})
	}
	all, _ := l.since(0, 0) // seqs 3, 4, 5
	for _, e := range all {
		b, _ := json.Marshal(e)
		want := fmt.Sprintf("id: %d\nevent: entry\ndata: %s\n\n", e.Seq, b)
		got, last, lost, _ := l.frames(e.Seq-1, "", nil)
		if len(got) != 5-int(e.Seq)+1 || string(got[0]) != want || last != 5 || lost != 0 {
			t.Errorf("frames after %d: %q (last %d, lost %d), want first %q", e.Seq-1, got, last, lost, want)
		}
	}
	got, last, lost, wake := l.frames(1, "a", make([][]byte, 0, 4))
	if len(got) != 2 || last != 5 || lost != 1 {
		t.Errorf("frames of a after 1: %d frames, last %d, lost %d; want 2 (seqs 3 and 5), 5, 1 (seq 2)", len(got), last, lost)
	}
	// Shared, not copied: the ring's frame itself.
	if &got[0][0] != &l.buf[l.head].frame[0] {
		t.Error("frames copies the ring's frames: every stream would pay for them")
	}
	if got, _, lost, _ := l.frames(5, "", nil); len(got) != 0 || lost != 0 {
		t.Errorf("frames after the newest: %q, lost %d", got, lost)
	}
	l.add(Entry{Kind: "reload"})
	select {
	case <-wake:
	default:
		t.Error("frames' channel not closed by add")
	}
}

// BenchmarkEventLogAdd is the per-event cost paid once, whatever the
// number of streams: seq, encoding, ring slot.
func BenchmarkEventLogAdd(b *testing.B) {
	l := newEventLog(DefaultHistory, 1)
	e := Entry{Kind: "state", Link: "cable", From: "up", To: "down", Reason: "loss 100% over 3 probes", Status: &Link{Link: "cable", State: "down"}}
	b.ReportAllocs()
	for b.Loop() {
		l.add(e)
	}
}

// BenchmarkStreamFanoutServer is the server's own per-client cost of an
// event, without sockets: N streams (the real handler) write into
// in-memory connections. Its ns/client stays flat from 1 to 1000 clients;
// BenchmarkStreamFanout adds the sockets and the readers.
func BenchmarkStreamFanoutServer(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			s := &Server{events: newEventLog(DefaultHistory, 1), opts: Options{KeepAlive: time.Hour, StreamWriteTimeout: 10 * time.Second}}
			var got, target atomic.Int64
			reached := make(chan struct{}, 1)
			ctx, cancel := context.WithCancel(context.Background())
			var done sync.WaitGroup
			for range n {
				w := &memStream{header: http.Header{}, frame: func() {
					if got.Add(1) == target.Load() {
						reached <- struct{}{}
					}
				}}
				r := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/events/stream", nil)
				done.Add(1)
				go func() { defer done.Done(); s.streamEvents(w, r) }()
			}
			defer func() { cancel(); done.Wait() }()
			e := Entry{Kind: "state", Link: "cable", From: "up", To: "down", Reason: "loss 100% over 3 probes", Status: &Link{Link: "cable", State: "down"}}
			time.Sleep(100 * time.Millisecond) // every stream waiting
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for i := range b.N {
				target.Store(int64(i+1) * int64(n))
				s.events.add(e)
				select {
				case <-reached:
				case <-time.After(10 * time.Second):
					b.Fatalf("event %d: %d of %d streams", i, got.Load()-int64(i*n), n)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			per := float64(b.N) * float64(n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/client")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/client")
		})
	}
}

// memStream is an in-memory streaming connection: it keeps the last 4
// KiB written, as a connection's buffer would, and calls frame for every
// flushed event.
type memStream struct {
	header  http.Header
	buf     [4096]byte
	pending int
	frame   func()
}

func (m *memStream) Header() http.Header { return m.header }
func (m *memStream) WriteHeader(int)     {}
func (m *memStream) Write(p []byte) (int, error) {
	copy(m.buf[:], p)
	if bytes.HasPrefix(p, []byte("id: ")) {
		m.pending++
	}
	return len(p), nil
}
func (m *memStream) Flush() {
	for ; m.pending > 0; m.pending-- {
		m.frame()
	}
}
func (m *memStream) SetWriteDeadline(time.Time) error { return nil }
