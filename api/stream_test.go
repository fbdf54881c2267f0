package api_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/bound"
)

// TestStreamSlowClient: one stream client that never reads does not hold
// up the 100 others, nor whoever records decisions; it is dropped after
// StreamWriteTimeout and the drop is counted.
func TestStreamSlowClient(t *testing.T) {
	const (
		fast    = 100
		events  = 40
		timeout = 5 * time.Second
	)
	f := apitest.NewFake(apitest.Links()...)
	s, addr := apitest.Start(t, f, api.Options{StreamWriteTimeout: timeout})
	path := strings.TrimPrefix(addr, "unix:")
	open := func() net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /api/v1/events/stream HTTP/1.1\r\nHost: multihome\r\n\r\n")
		return c
	}
	dropped0 := bound.DroppedCount(api.StreamQueue)

	// The slow client: its stream is opened, then never read.
	slow := open()

	type result struct {
		seqs []uint64
		err  error
	}
	results := make(chan result, fast)
	var ready sync.WaitGroup
	for range fast {
		c := open()
		ready.Add(1)
		go func() {
			r := bufio.NewReader(c)
			var res result
			defer func() { results <- res }()
			started := false
			for len(res.seqs) < events {
				line, err := r.ReadString('\n')
				if err != nil {
					res.err = err
					return
				}
				if !started && strings.HasPrefix(line, ": multihome event stream") {
					started = true
					ready.Done()
				}
				if id, ok := strings.CutPrefix(line, "id: "); ok {
					n, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
					if err != nil {
						res.err = err
						return
					}
					res.seqs = append(res.seqs, n)
				}
			}
		}()
	}
	ready.Wait()

	// 40 entries of 16 KiB: 640 KiB, more than the slow client's socket
	// buffers take, so its stream's writes block.
	reason := strings.Repeat("x", 16<<10)
	first := lastSeq(t, addr) + 1
	start := time.Now()
	for i := range events {
		t0 := time.Now()
		s.Record(api.Entry{Kind: "bgp", Neighbor: "192.0.2.1", Reason: reason})
		if d := time.Since(t0); d > time.Second {
			t.Errorf("recording entry %d took %v", i, d)
		}
	}
	// Every fast client has every entry, in order, well before the slow
	// one is given up on: none waited for it.
	deadline := time.After(timeout / 2)
	for range fast {
		select {
		case res := <-results:
			if res.err != nil {
				t.Fatalf("fast client: %v after %d entries", res.err, len(res.seqs))
			}
			for k, seq := range res.seqs {
				if seq != first+uint64(k) {
					t.Fatalf("fast client got seqs %v, want %d.. in order", res.seqs, first)
				}
			}
		case <-deadline:
			t.Fatalf("fast clients did not all get %d entries within %v of the first", events, timeout/2)
		}
	}
	t.Logf("100 fast clients had all %d entries %v after the first was recorded", events, time.Since(start))

	// The slow client is dropped: counted, and its stream closed (what it
	// has not read yet ends with EOF).
	for bound.DroppedCount(api.StreamQueue) == dropped0 {
		if time.Since(start) > 3*timeout {
			t.Fatalf("slow client not dropped %v after the entries (multihome_bound_dropped_total{queue=%q} unchanged)", time.Since(start), api.StreamQueue)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, slow)
	if err != nil {
		t.Fatalf("slow client's stream not closed after the drop: %v (read %d bytes)", err, n)
	}
	if n >= events*16<<10 {
		t.Errorf("slow client read %d bytes after the drop: it had every entry", n)
	}
}

// lastSeq is the seq of the newest entry, from GET /api/v1/events.
func lastSeq(t *testing.T, addr string) uint64 {
	t.Helper()
	c, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Events(t.Context(), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	return l.Last
}

// TestStreamSkipsAhead: a client that reads too slowly for the decision
// log (here 4 entries) skips ahead: told in a comment how many entries it
// lost, counted, then every newer entry in order.
func TestStreamSkipsAhead(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	s, addr := apitest.Start(t, f, api.Options{History: 4})
	path := strings.TrimPrefix(addr, "unix:")
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/events/stream HTTP/1.1\r\nHost: multihome\r\n\r\n")
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ": multihome event stream") {
			break
		}
	}
	dropped0 := bound.DroppedCount(api.StreamQueue)
	first := lastSeq(t, addr) + 1
	// 20 entries of 256 KiB while the client reads nothing: its stream's
	// write of the first ones blocks while the log wraps four times.
	reason := strings.Repeat("y", 256<<10)
	for range 20 {
		s.Record(api.Entry{Kind: "bgp", Neighbor: "192.0.2.1", Reason: reason})
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seqs []uint64
	var lost uint64 // the sum of the skip comments
	skipped := ""
	for len(seqs) == 0 || seqs[len(seqs)-1] != first+19 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after seqs %v (skipped %q): %v", seqs, skipped, err)
		}
		if strings.HasPrefix(line, ": skipped ") {
			skipped += strings.TrimSpace(line) + "; "
			var n uint64
			fmt.Sscanf(line, ": skipped %d entries", &n)
			lost += n
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
			seqs = append(seqs, n)
		}
	}
	if skipped == "" {
		t.Fatalf("no skip comment; seqs %v", seqs)
	}
	if int(lost)+len(seqs) != 20 {
		t.Errorf("%q and %d entries (%v): want 20 in all", skipped, len(seqs), seqs)
	}
	for k := 1; k < len(seqs); k++ {
		if seqs[k] <= seqs[k-1] {
			t.Errorf("seqs out of order: %v", seqs)
		}
	}
	if d := bound.DroppedCount(api.StreamQueue) - dropped0; d != float64(lost) {
		t.Errorf("multihome_bound_dropped_total{queue=%q} rose by %v, want %d", api.StreamQueue, d, lost)
	}
	t.Logf("%s, then %d entries: %v", skipped, len(seqs), seqs)

	// A client resuming after entries the log no longer holds (it holds
	// first+16..first+19) is told how many it missed; not counted again.
	cl, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	var missed uint64
	cl.Skipped = func(n uint64) { missed = n }
	dropped1 := bound.DroppedCount(api.StreamQueue)
	var resumed []uint64
	errDone := errors.New("done")
	err = cl.Stream(t.Context(), first, "", false, func(e api.Entry) error {
		resumed = append(resumed, e.Seq)
		if e.Seq == first+19 {
			return errDone
		}
		return nil
	})
	if err != errDone || missed != 15 || len(resumed) != 4 || resumed[0] != first+16 {
		t.Errorf("resumed after %d: %v, Skipped(%d), entries %v; want Skipped(15), %d..%d", first, err, missed, resumed, first+16, first+19)
	}
	if d := bound.DroppedCount(api.StreamQueue) - dropped1; d != 0 {
		t.Errorf("a resumed stream counted %v drops", d)
	}
}
