package bond

import (
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestRelayHalfClose: the client sends a request and closes its write
// side; the answer still arrives in full, then EOF.
func TestRelayHalfClose(t *testing.T) {
	c1, p1 := tcpPair(t) // client ↔ proxy's inside
	p2, s2 := tcpPair(t) // proxy's outside ↔ server
	var up, down int
	go Relay(p1, p2, time.Minute, func(n int) { up += n }, func(n int) { down += n })
	go func() {
		req, _ := io.ReadAll(s2) // until the client's half-close
		s2.Write(append([]byte("echo:"), req...))
		s2.Close()
	}()
	c1.Write([]byte("hello"))
	c1.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c1)
	if err != nil || string(got) != "echo:hello" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestRelayIdle: a connection where neither side sends is closed after
// the idle timeout; one where one side keeps sending is not.
func TestRelayIdle(t *testing.T) {
	c1, p1 := tcpPair(t)
	p2, s2 := tcpPair(t)
	done := make(chan struct{})
	go func() { Relay(p1, p2, 300*time.Millisecond, nil, nil); close(done) }()
	// One direction busy for 1 s: the quiet direction must not end it.
	go func() {
		for range 10 {
			s2.Write([]byte("x"))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	buf := make([]byte, 1)
	for range 10 {
		c1.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c1.Read(buf); err != nil {
			t.Fatalf("busy relay closed early: %v", err)
		}
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("idle relay not closed")
	}
	c1.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c1.Read(buf); err == nil {
		t.Error("client still open after idle close")
	}
}
