package api_test

// Scale benchmark of the event stream (bench/scale.sh), gated behind
// MULTIHOME_BENCH=1: N server-sent-event clients on the API's unix
// socket, link events published by a fake daemon whose decision log is
// full (1000 entries); how long until every client has each event, and
// what each client costs the process.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/monitor"
)

func TestBenchScaleSSE(t *testing.T) {
	if os.Getenv("MULTIHOME_BENCH") == "" {
		t.Skip("benchmark: set MULTIHOME_BENCH=1 (bench/scale.sh)")
	}
	out := func(lines ...string) {
		for _, l := range lines {
			t.Log(l)
		}
		if f := os.Getenv("MULTIHOME_BENCH_OUT"); f != "" {
			if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintln(fh, strings.Join(lines, "\n"))
				fh.Close()
			}
		}
	}
	const events = 20
	out("", fmt.Sprintf("| SSE clients | event → first client (median of %d events) | event → every client (median) | (p95) | heap per client | goroutines per client |", events),
		"|---|---|---|---|---|---|")
	for _, n := range []int{1, 100, 1000} {
		f := apitest.NewFake(apitest.Links()...)
		_, addr := apitest.Start(t, f, api.Options{})
		path := strings.TrimPrefix(addr, "unix:")
		// A daemon that has run a while: the decision log's ring is full.
		for range api.DefaultHistory {
			f.Update("lte", "bench: fill the ring", func(s *monitor.Status) {
				if s.State == monitor.Degraded {
					s.State = monitor.Up
				} else {
					s.State = monitor.Degraded
				}
			})
		}
		time.Sleep(100 * time.Millisecond)

		var sentAt [events]atomic.Int64
		var got [events]atomic.Int32
		var firstAt [events]atomic.Int64
		var lastAt [events]atomic.Int64
		var ready sync.WaitGroup
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /api/v1/events/stream HTTP/1.1\r\nHost: multihome\r\n\r\n")
			ready.Add(1)
			go func() {
				r := bufio.NewReader(c)
				k, started := 0, false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if !started && strings.HasPrefix(line, ": multihome event stream") {
						started = true
						ready.Done()
					}
					if line == "event: entry\n" && k < events {
						now := time.Now().UnixNano()
						firstAt[k].CompareAndSwap(0, now)
						if got[k].Add(1) == int32(n) {
							lastAt[k].Store(now)
						}
						k++
					}
				}
			}()
		}
		ready.Wait()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perClient := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(n)
		goroutines := float64(runtime.NumGoroutine()-g0) / float64(n)
		var first, all []time.Duration
		for k := range events {
			sentAt[k].Store(time.Now().UnixNano())
			f.Update("cable", "bench", func(s *monitor.Status) {
				if s.State == monitor.Up {
					s.State = monitor.Down
				} else {
					s.State = monitor.Up
				}
			})
			deadline := time.Now().Add(10 * time.Second)
			for got[k].Load() < int32(n) {
				if time.Now().After(deadline) {
					t.Fatalf("%d clients: event %d reached %d", n, k, got[k].Load())
				}
				time.Sleep(200 * time.Microsecond)
			}
			first = append(first, time.Duration(firstAt[k].Load()-sentAt[k].Load()))
			all = append(all, time.Duration(lastAt[k].Load()-sentAt[k].Load()))
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range conns {
			c.Close()
		}
		slices.Sort(first)
		slices.Sort(all)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
		heap := "(too small to see)"
		if n >= 100 {
			heap = fmt.Sprintf("%.1f KiB", float64(perClient)/1024)
		}
		out(fmt.Sprintf("| %d | %s | %s | %s | %s | %.1f |", n, ms(first[len(first)/2]), ms(all[len(all)/2]), ms(all[len(all)*95/100]), heap, goroutines))
	}
}
