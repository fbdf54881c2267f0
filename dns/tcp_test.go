package dns

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/netns"
)

const tcpYAML = baseLinks + `
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  tcp_idle: 1s
  tcp_read_timeout: 200ms
  tcp_max_connections: 64
  tcp_max_per_client: 8
  tcp_max_queries: 5
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
        - {name: www, ttl: 30s, records: [{link: isp1, a: 198.51.100.2}, {link: isp2, a: 198.51.100.18}]}
`

// dialFrom opens a connection from a loopback source address (each
// 127.0.N.0/24 is one client prefix) inside ns.
func dialFrom(ctx context.Context, ns, network, src, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Second}
	if network == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	} else {
		d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(src)}
	}
	return netns.DialContext(ctx, ns, d, network, addr)
}

// tcpQuery sends one query on c and reads its answer.
func tcpQuery(c net.Conn, name string) (*mdns.Msg, error) {
	m := newQuery(name, mdns.TypeA)
	b, _ := m.Pack()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	rb := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, rb); err != nil {
		return nil, err
	}
	r := new(mdns.Msg)
	return r, r.Unpack(rb)
}

// TestTCPFlood: one client prefix holds its share of TCP connections,
// stalls inside messages and floods new connections, and another client
// is answered over UDP and TCP all along. Each limit shows in the
// counters: per-client refusals, half-sent messages closed after the
// read timeout, idle connections, the query cap, an unanswerable message.
func TestTCPFlood(t *testing.T) {
	ns := testNS(t, "tcpflood")
	ts := startServer(t, parseConfig(t, tcpYAML), newFakeSource("isp1", "isp2"), inNS(ns))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The flooder's share: 8 connections, 4 of them stalled one byte into
	// a message.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 8 {
		c, err := dialFrom(ctx, ns, "tcp", "127.0.1.1", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			c.Write([]byte{0})
		}
		held = append(held, c)
	}
	eventually(t, 2*time.Second, "8 connections open", func() bool { return ts.Stats().TCPOpen == 8 })

	// The flood: 300 more connections from the same /24, each held open,
	// while the other client asks.
	var wg sync.WaitGroup
	wg.Add(1)
	flood := make(chan net.Conn, 300)
	go func() {
		defer wg.Done()
		defer close(flood)
		for range 300 {
			if c, err := dialFrom(ctx, ns, "tcp", "127.0.1.2", ts.addr); err == nil {
				flood <- c
			}
		}
	}()
	good := 0
	for i := 0; i < 20; i++ {
		u, err := dialFrom(ctx, ns, "udp", "127.0.2.1", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		cl := &mdns.Client{Timeout: 2 * time.Second}
		r, _, err := cl.ExchangeWithConnContext(ctx, newQuery("www.example.com.", mdns.TypeA), &mdns.Conn{Conn: u})
		u.Close()
		if err != nil || len(r.Answer) != 2 {
			t.Errorf("UDP query %d from another client during the flood: %v %v", i, r, err)
			continue
		}
		c, err := dialFrom(ctx, ns, "tcp", "127.0.2.1", ts.addr)
		if err != nil {
			t.Errorf("TCP connect %d from another client during the flood: %v", i, err)
			continue
		}
		r, err = tcpQuery(c, "www.example.com.")
		c.Close()
		if err != nil || len(r.Answer) != 2 {
			t.Errorf("TCP query %d from another client during the flood: %v %v", i, r, err)
			continue
		}
		good++
	}
	wg.Wait()
	for c := range flood {
		c.Close()
	}
	st := ts.Stats()
	t.Logf("other client answered %d/20 times over UDP and TCP; flood refused %d (per client), closed %v, open %d", good, st.TCPRejected["client"], st.TCPClosed, st.TCPOpen)
	if st.TCPRejected["client"] < 250 {
		t.Errorf("only %d of 300 flood connections refused by the per-client cap", st.TCPRejected["client"])
	}
	// The stalled ones went after the read timeout, the idle ones after
	// tcp_idle.
	eventually(t, 3*time.Second, "stalled and idle connections closed", func() bool {
		st := ts.Stats()
		return st.TCPClosed["partial"] >= 4 && st.TCPClosed["idle"] >= 4
	})

	// The query cap: the sixth query on a connection finds it closed.
	c, err := dialFrom(ctx, ns, "tcp", "127.0.3.1", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if _, err := tcpQuery(c, "www.example.com."); err != nil {
			t.Fatalf("query %d of 5: %v", i+1, err)
		}
	}
	if _, err := tcpQuery(c, "www.example.com."); err == nil {
		t.Error("a sixth query was answered: tcp_max_queries is 5")
	}
	// A response cannot be answered: the connection is closed.
	c2, err := dialFrom(ctx, ns, "tcp", "127.0.3.1", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	m := newQuery("www.example.com.", mdns.TypeA)
	m.Response = true
	b, _ := m.Pack()
	c2.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c2.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("after a response: read %d bytes, %v; want the connection closed", n, err)
	}
	eventually(t, time.Second, "counters", func() bool {
		st := ts.Stats()
		return st.TCPClosed["max_queries"] >= 1 && st.TCPClosed["bad_message"] >= 1
	})
}

// TestTCPTotalCap: past tcp_max_connections every new connection is
// refused, whoever it comes from, and counted.
func TestTCPTotalCap(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &Server{}
	ts := newTCPServer(s, l, tcpLimits{maxConns: 3, perClient: 2, p4: 24, p6: 56})
	a := netipPrefix("192.0.2.0/24")
	b := netipPrefix("198.51.100.0/24")
	var conns []net.Conn
	for range 4 {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		conns = append(conns, c1)
	}
	if !ts.admit(conns[0], a) || !ts.admit(conns[1], a) {
		t.Fatal("first two from one prefix refused")
	}
	if ts.admit(conns[2], a) {
		t.Error("third from one prefix admitted (per-client cap 2)")
	}
	if !ts.admit(conns[2], b) {
		t.Error("another prefix refused under the total cap")
	}
	if ts.admit(conns[3], b) {
		t.Error("fourth connection admitted (total cap 3)")
	}
	ts.release(conns[0], a)
	if !ts.admit(conns[3], b) {
		t.Error("refused after a slot was released")
	}
	if s.ctr.tcpRejectClient.Load() != 1 || s.ctr.tcpRejectTotal.Load() != 1 {
		t.Errorf("refusals counted: client %d, total %d; want 1, 1", s.ctr.tcpRejectClient.Load(), s.ctr.tcpRejectTotal.Load())
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
