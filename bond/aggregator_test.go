package bond

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

// startAggregator runs an aggregator on loopback and an echo server as
// the destination; it returns their addresses.
func startAggregator(t *testing.T, opts AggregatorOptions) (*Aggregator, string, netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.(*net.TCPConn).CloseWrite() }()
		}
	}()
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAggregator(opts, slog.New(slog.DiscardHandler))
	go a.Serve(ctx, ln)
	return a, ln.Addr().String(), netip.MustParseAddrPort(echo.Addr().String())
}

// answer reads what the aggregator sends until it closes or 3 s pass.
func answer(t *testing.T, c net.Conn) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return b, time.Since(start)
}

func TestAggregator(t *testing.T) {
	_, addr, dst := startAggregator(t, AggregatorOptions{Key: testKey, MaxConns: 8, HeaderTimeout: 300 * time.Millisecond, DialTimeout: time.Second, IdleTimeout: time.Minute})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	h, _ := NewHeader(dst)
	good := h.Marshal(testKey)

	c := dial()
	c.Write(good)
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	if b, _ := answer(t, c); string(b) != "\x00ping" {
		t.Errorf("relayed: got %q, want status 0 then the echo", b)
	}

	c = dial()
	c.Write(good) // the same header again: a replay
	if b, _ := answer(t, c); len(b) != 0 {
		t.Errorf("replayed header answered %q", b)
	}

	c = dial()
	h2, _ := NewHeader(dst)
	c.Write(h2.Marshal([]byte("the wrong key, 32 bytes long....")))
	if b, _ := answer(t, c); len(b) != 0 {
		t.Errorf("wrong key answered %q", b)
	}

	c = dial()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if b, took := answer(t, c); len(b) != 0 || took > 2*time.Second {
		t.Errorf("garbage: answered %q, cut after %v", b, took)
	}

	c = dial()
	c.Write(good[:20]) // stalls inside the header
	if b, took := answer(t, c); len(b) != 0 || took > 2*time.Second {
		t.Errorf("stalled header: answered %q, cut after %v (header timeout 300ms)", b, took)
	}

	c = dial()
	closed, _ := NewHeader(netip.MustParseAddrPort("127.0.0.1:1"))
	c.Write(closed.Marshal(testKey))
	if b, _ := answer(t, c); string(b) != "\x01" {
		t.Errorf("unreachable destination: got %q, want status 1", b)
	}
}

// TestAggregatorLimit: connections over max_conns are closed at once.
func TestAggregatorLimit(t *testing.T) {
	_, addr, _ := startAggregator(t, AggregatorOptions{Key: testKey, MaxConns: 1, HeaderTimeout: 5 * time.Second, DialTimeout: time.Second})
	first, err := net.Dial("tcp", addr) // holds the only slot, header pending
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	time.Sleep(100 * time.Millisecond)
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, took := answer(t, second); took > 2*time.Second {
		t.Errorf("over the limit: still open after %v", took)
	}
}
