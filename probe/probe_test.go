package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// These tests need no privileges: they probe servers on the loopback
// interface of the test's own namespace with unbound probers.

func TestParseHostPort(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		bad  bool
	}{
		{in: "203.0.113.10", host: "203.0.113.10", port: 80},
		{in: "203.0.113.10:8080", host: "203.0.113.10", port: 8080},
		{in: "2001:db8::1", host: "2001:db8::1", port: 80},
		{in: "[2001:db8::1]:443", host: "2001:db8::1", port: 443},
		{in: "[2001:db8::1]", host: "2001:db8::1", port: 80},
		{in: "example.com", host: "example.com", port: 80},
		{in: "example.com:81", host: "example.com", port: 81},
		{in: "", bad: true},
		{in: "203.0.113.10:0", bad: true},
		{in: "203.0.113.10:x", bad: true},
		{in: "[2001:db8::1", bad: true},
		{in: ":80", bad: true},
	} {
		h, p, err := parseHostPort(tc.in, 80)
		if tc.bad {
			if err == nil {
				t.Errorf("parseHostPort(%q) = %q, %d; want error", tc.in, h, p)
			}
			continue
		}
		if err != nil || h != tc.host || p != tc.port {
			t.Errorf("parseHostPort(%q) = %q, %d, %v; want %q, %d", tc.in, h, p, err, tc.host, tc.port)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, p := range []config.Probe{
		{Type: "bogus", Target: "203.0.113.10"},
		{Type: config.ProbeICMP, Target: "example.com"},
		{Type: config.ProbeDNS, Target: "example.com"},
		{Type: config.ProbeDNS, Target: "203.0.113.53", Query: "bad..name"},
		{Type: config.ProbeTCP, Target: "203.0.113.10:99999"},
	} {
		if pr, err := New(p, Binding{}); err == nil {
			pr.Close()
			t.Errorf("New(%+v) succeeded, want error", p)
		}
	}
}

func TestICMPMatch(t *testing.T) {
	p := &icmpProber{dst: netip.MustParseAddr("203.0.113.10"), id: 0x1234, cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	req, err := p.marshalEcho(7)
	if err != nil {
		t.Fatal(err)
	}
	// Turn the request into a reply: type 0, checksum ignored by parser.
	reply := append([]byte{}, req...)
	reply[0] = 0
	if seq, rerr, ok := p.match(reply, p.dst); !ok || seq != 7 || rerr != nil {
		t.Errorf("echo reply: got %d %v %v", seq, rerr, ok)
	}
	if _, _, ok := p.match(reply, netip.MustParseAddr("203.0.113.11")); ok {
		t.Error("reply from another source matched")
	}
	other := append([]byte{}, reply...)
	other[4], other[5] = 0x43, 0x21 // another identifier
	if _, _, ok := p.match(other, p.dst); ok {
		t.Error("reply with another identifier matched")
	}
	cookie := append([]byte{}, reply...)
	cookie[8] ^= 0xff
	if _, _, ok := p.match(cookie, p.dst); ok {
		t.Error("reply with another cookie matched")
	}
	if _, _, ok := p.match(req, p.dst); ok {
		t.Error("echo request matched as a reply")
	}

	// Host unreachable quoting our request: IPv4 header + first 8 bytes.
	ip := make([]byte, 20)
	ip[0] = 0x45
	ip[9] = protoICMP
	copy(ip[12:16], netip.MustParseAddr("198.51.100.2").AsSlice())
	copy(ip[16:20], p.dst.AsSlice())
	quote := append(ip, req[:8]...)
	unreach := append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, quote...)
	seq, rerr, ok := p.match(unreach, netip.MustParseAddr("198.51.100.1"))
	if !ok || seq != 7 || rerr == nil || !strings.Contains(rerr.Error(), "host unreachable from 198.51.100.1") {
		t.Errorf("unreachable: got %d %v %v", seq, rerr, ok)
	}
	copy(quote[16:20], netip.MustParseAddr("203.0.113.11").AsSlice())
	if _, _, ok := p.match(append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, quote...), netip.MustParseAddr("198.51.100.1")); ok {
		t.Error("unreachable for another destination matched")
	}
}

func TestICMPv6Match(t *testing.T) {
	p := &icmpProber{dst: netip.MustParseAddr("2001:db8:ffff::10"), v6: true, id: 0x4242, cookie: [8]byte{9, 9, 9, 9, 9, 9, 9, 9}}
	req, err := p.marshalEcho(513)
	if err != nil {
		t.Fatal(err)
	}
	reply := append([]byte{}, req...)
	reply[0] = 129
	if seq, _, ok := p.match(reply, p.dst); !ok || seq != 513 {
		t.Errorf("echo reply: got %d %v", seq, ok)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	ip[6] = protoICMPv6
	copy(ip[24:40], p.dst.AsSlice())
	unreach := append([]byte{1, 3, 0, 0, 0, 0, 0, 0}, append(ip, req[:8]...)...)
	seq, rerr, ok := p.match(unreach, netip.MustParseAddr("2001:db8:1::1"))
	if !ok || seq != 513 || rerr == nil || !strings.Contains(rerr.Error(), "address unreachable") {
		t.Errorf("unreachable: got %d %v %v", seq, rerr, ok)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p, err := New(config.Probe{Type: config.ProbeTCP, Target: ln.Addr().String()}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Type() != "tcp" || p.Target() != ln.Addr().String() {
		t.Errorf("Type/Target = %s %s", p.Type(), p.Target())
	}
	if rtt, err := p.Probe(context.Background(), time.Second); err != nil || rtt <= 0 {
		t.Errorf("probe open port: %v %v", rtt, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// Refused: the host answered through the path, which counts.
	p2, _ := New(config.Probe{Type: config.ProbeTCP, Target: addr}, Binding{})
	if _, err := p2.Probe(context.Background(), time.Second); err != nil {
		t.Errorf("probe closed port: %v, want success (refused = reachable)", err)
	}
}

func TestHTTP(t *testing.T) {
	var gotHost, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotPath = r.Host, r.URL.Path
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")
	p, err := New(config.Probe{Type: config.ProbeHTTP, Target: target, Host: "probe.example", Path: "/health"}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Probe(context.Background(), time.Second); err != nil {
		t.Errorf("probe: %v", err)
	}
	if gotHost != "probe.example" || gotPath != "/health" {
		t.Errorf("server saw Host %q path %q", gotHost, gotPath)
	}
	p, _ = New(config.Probe{Type: config.ProbeHTTP, Target: target, Path: "fail"}, Binding{})
	if _, err := p.Probe(context.Background(), time.Second); err == nil || !strings.Contains(err.Error(), "status 503, want 200") {
		t.Errorf("probe /fail: %v", err)
	}
	p, _ = New(config.Probe{Type: config.ProbeHTTP, Target: target, Path: "/fail", ExpectStatus: 503}, Binding{})
	if _, err := p.Probe(context.Background(), time.Second); err != nil {
		t.Errorf("probe /fail expecting 503: %v", err)
	}

	tsrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tsrv.Close()
	p, _ = New(config.Probe{Type: config.ProbeHTTPS, Target: strings.TrimPrefix(tsrv.URL, "https://")}, Binding{})
	if p.Type() != "https" {
		t.Errorf("type %s", p.Type())
	}
	if _, err := p.Probe(context.Background(), time.Second); err != nil {
		t.Errorf("https probe: %v", err)
	}
}

func TestHTTPTimeout(t *testing.T) {
	// A server that accepts but never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	p, _ := New(config.Probe{Type: config.ProbeHTTP, Target: ln.Addr().String()}, Binding{})
	start := time.Now()
	_, err = p.Probe(context.Background(), 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("probe took %v", d)
	}
}

func TestDNS(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Name {
		case "nx.example.":
			m.Rcode = dns.RcodeNameError
		case "fail.example.":
			m.Rcode = dns.RcodeServerFailure
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	for _, tc := range []struct {
		query string
		ok    bool
	}{{"", true}, {"nx.example", true}, {"fail.example", false}} {
		p, err := New(config.Probe{Type: config.ProbeDNS, Target: pc.LocalAddr().String(), Query: tc.query}, Binding{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Probe(context.Background(), time.Second)
		if (err == nil) != tc.ok {
			t.Errorf("query %q: err %v, want ok=%v", tc.query, err, tc.ok)
		}
	}
	// Nothing listening: ICMP port unreachable makes the read fail.
	addr := pc.LocalAddr().String()
	srv.Shutdown()
	p, _ := New(config.Probe{Type: config.ProbeDNS, Target: addr}, Binding{})
	if _, err := p.Probe(context.Background(), 200*time.Millisecond); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}

// FuzzICMPMatch feeds arbitrary ICMP messages to the reply matcher: it
// must never panic, and must only match replies carrying our identifier.
func FuzzICMPMatch(f *testing.F) {
	p4 := &icmpProber{dst: netip.MustParseAddr("203.0.113.10"), id: 0x1234, cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	p6 := &icmpProber{dst: netip.MustParseAddr("2001:db8:ffff::10"), v6: true, id: 0x1234, cookie: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	req4, _ := p4.marshalEcho(1)
	req6, _ := p6.marshalEcho(1)
	f.Add(req4, false)
	f.Add(append([]byte{0}, req4[1:]...), false)
	f.Add(append([]byte{3, 1, 0, 0, 0, 0, 0, 0, 0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 51, 100, 2, 203, 0, 113, 10}, req4[:8]...), false)
	f.Add(append([]byte{129}, req6[1:]...), true)
	f.Add([]byte{1, 3, 0, 0, 0, 0, 0, 0, 0x60}, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		p := p4
		if v6 {
			p = p6
		}
		if _, _, ok := p.match(b, p.dst); ok && len(b) >= 8 && b[0] != 3 && b[0] != 11 && b[0] != 1 {
			if id := uint16(b[4])<<8 | uint16(b[5]); id != p.id {
				t.Errorf("matched identifier %#x", id)
			}
		}
	})
}
