package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// BenchmarkHandleUDP measures the query path without sockets: parse, look
// up, answer, pack.
func BenchmarkHandleUDP(b *testing.B) {
	cfg := parseConfig(b, nameConfig("policy: all"))
	src := newFakeSource("isp1", "isp2", "isp3")
	s, err := New(cfg, src, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.mu.Lock()
	for _, st := range src.Snapshot() {
		s.applyStatus(st, s.now(), true)
	}
	s.rebuild()
	s.mu.Unlock()
	v := s.view.Load()
	for _, c := range []struct {
		name string
		edns bool
	}{{"plain", false}, {"edns", true}} {
		m := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
		if c.edns {
			m.SetEdns0(1232, false)
		}
		q, _ := m.Pack()
		out := make([]byte, 0, 65536)
		cache := newAnswerCache()
		src := netip.MustParseAddr("192.0.2.10")
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := s.handleUDP(v, q, src, out[:0], cache); len(r) == 0 {
					b.Fatal("no answer")
				}
			}
		})
	}
}
