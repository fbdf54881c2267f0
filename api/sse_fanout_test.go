package api_test

// Per-client cost of the event stream's fan-out: BenchmarkStreamFanout
// publishes link events to N clients of GET /api/v1/events/stream on the
// API's unix socket and waits until every client has read each one. Its
// ns/client and allocs/client (per event per client, readers included:
// they read into a fixed buffer and allocate nothing) stay flat from 1 to
// 1000 clients when an event costs one encoding shared by all streams
// (docs/scale.md "API event stream").
//
//	go test ./api/ -run '^$' -bench StreamFanout -benchtime 200x

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/monitor"
)

func BenchmarkStreamFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(b, f, api.Options{})
	path := strings.TrimPrefix(addr, "unix:")
	var got atomic.Int64    // events read, summed over clients
	var target atomic.Int64 // got when the last client has the current event
	reached := make(chan struct{}, 1)
	var ready, done sync.WaitGroup
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		done.Wait()
	}()
	for range n {
		c, err := net.Dial("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /api/v1/events/stream HTTP/1.1\r\nHost: multihome\r\n\r\n")
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			countFrames(c, func() { ready.Done() }, func() {
				if got.Add(1) == target.Load() {
					reached <- struct{}{}
				}
			})
		}()
	}
	ready.Wait()
	flip := func(s *monitor.Status) {
		if s.State == monitor.Up {
			s.State = monitor.Down
		} else {
			s.State = monitor.Up
		}
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		want := int64(i+1) * int64(n)
		target.Store(want)
		f.Update("cable", "bench", flip)
		select {
		case <-reached:
		case <-time.After(10 * time.Second):
			b.Fatalf("%d clients: event %d reached %d", n, i, got.Load()-want+int64(n))
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&m1)
	per := float64(b.N) * float64(n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/per, "ns/client")
	// CPU time (user + system, server and readers) tells less about the
	// other work on a shared machine than wall time does.
	b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/client")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/client")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/client")
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countFrames reads an event stream from c into a fixed buffer: started
// once the stream's opening comment has arrived, then frame for every
// blank line that ends an SSE event after it (the stream's chunked
// framing puts "\r\n" around chunks, never between the two "\n").
func countFrames(c net.Conn, started, frame func()) {
	buf := make([]byte, 64<<10)
	var prev byte
	open := false
	var head []byte
	for {
		k, err := c.Read(buf)
		if err != nil {
			return
		}
		p := buf[:k]
		if !open {
			head = append(head, p...)
			i := bytes.Index(head, []byte(": multihome event stream\n\n"))
			if i < 0 {
				continue
			}
			open = true
			started()
			p = head[i+len(": multihome event stream\n\n"):]
			prev = 0
		}
		for _, ch := range p {
			if ch == '\n' && prev == '\n' {
				frame()
			}
			prev = ch
		}
	}
}
