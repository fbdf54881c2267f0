package dns

import (
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// fakeWriter is an mdns.ResponseWriter that keeps what is written.
type fakeWriter struct {
	remote net.Addr
	msgs   []*mdns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) Network() string      { return "tcp" }
func (w *fakeWriter) WriteMsg(m *mdns.Msg) error {
	if _, err := m.Pack(); err != nil {
		return err
	}
	w.msgs = append(w.msgs, m)
	return nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *fakeWriter) Close() error                { return nil }
func (w *fakeWriter) TsigStatus() error           { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)         {}
func (w *fakeWriter) Hijack()                     {}

func seedQueries() [][]byte {
	var out [][]byte
	add := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	q := func(name string, t uint16) *mdns.Msg { return new(mdns.Msg).SetQuestion(name, t) }
	add(q("www.example.com.", mdns.TypeA))
	add(q("WWW.example.com.", mdns.TypeAAAA))
	add(q("nope.example.com.", mdns.TypeA))
	add(q("example.com.", mdns.TypeANY))
	add(q("alias.example.com.", mdns.TypeA))
	add(q("x.sub.example.com.", mdns.TypeA))
	add(q("foo.wild.example.com.", mdns.TypeA))
	add(q("example.com.", mdns.TypeAXFR))
	add(new(mdns.Msg).SetIxfr("example.com.", 1, "ns1.example.com.", "hostmaster.example.com."))
	add(q("example.org.", mdns.TypeA))
	m := q("www.example.com.", mdns.TypeA)
	m.SetEdns0(4096, true)
	o := m.IsEdns0()
	o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(192, 0, 2, 0)})
	add(m)
	m = q("big.example.com.", mdns.TypeTXT)
	m.SetEdns0(512, false)
	m.IsEdns0().SetVersion(1)
	add(m)
	m = q("www.example.com.", mdns.TypeA)
	m.SetTsig("xfr-key.", mdns.HmacSHA256, 300, 0)
	b, _, _ := mdns.TsigGenerate(m, testSecret, "", false)
	out = append(out, b)
	m = new(mdns.Msg).SetNotify("example.com.")
	add(m)
	// A compression pointer loop in the question.
	out = append(out, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	return out
}

// FuzzQuery feeds arbitrary messages to the query path, over the UDP
// entry point and the TCP handler (which also serves transfers): nothing
// may panic, and every answer must pack.
func FuzzQuery(f *testing.F) {
	for _, b := range seedQueries() {
		f.Add(b)
	}
	cfg := parseConfig(f, protoConfig(f))
	s, err := New(cfg, newFakeSource("isp1", "isp2"), nil)
	if err != nil {
		f.Fatal(err)
	}
	src := newFakeSource("isp1", "isp2")
	s.mu.Lock()
	for _, st := range src.Snapshot() {
		s.applyStatus(st, s.now(), true)
	}
	s.rebuild()
	s.mu.Unlock()
	v := s.view.Load()
	out := make([]byte, 0, 65536)
	cache := newAnswerCache()
	client := netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := s.handleUDP(v, b, client, out[:0], cache)
		if resp != nil {
			if len(resp) > 65535 {
				t.Fatalf("UDP answer of %d bytes", len(resp))
			}
			var m mdns.Msg
			if len(resp) > 12 {
				if err := m.Unpack(resp); err != nil {
					t.Fatalf("UDP answer does not parse: %v", err)
				}
			}
		}
		req := new(mdns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		w := &fakeWriter{remote: &net.TCPAddr{IP: client.AsSlice(), Port: 5353}}
		s.serveTCP(w, req)
	})
}
