package dns

import (
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/monitor"
)

// TestFastPathMatchesGeneral checks that the allocation-free path gives
// the answer the general path gives, for the queries it takes, and that
// it declines the others.
func TestFastPathMatchesGeneral(t *testing.T) {
	for _, fields := range []string{"policy: all", "policy: failover", "policy: first, count: 2", "policy: weighted, count: 3"} {
		for _, down := range [][]string{nil, {"isp1"}, {"isp1", "isp2", "isp3"}} {
			cfg := parseConfig(t, nameConfig(fields))
			src := newFakeSource("isp1", "isp2", "isp3")
			s, err := New(cfg, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			for _, st := range src.Snapshot() {
				if contains(down, st.Link) {
					st.State = monitor.Down
				}
				s.applyStatus(st, s.now(), true)
			}
			s.rebuild()
			s.mu.Unlock()
			v := s.view.Load()
			for _, q := range fastQueries() {
				req := new(mdns.Msg)
				if err := req.Unpack(q.wire); err != nil {
					t.Fatal(err)
				}
				slow := s.respond(v, req, false, netip.MustParseAddr("192.0.2.1"))
				size := 512
				if o := req.IsEdns0(); o != nil {
					size = min(max(int(o.UDPSize()), 512), v.udpSize)
				}
				slow.Truncate(size)
				// Only answers with addresses take the fast path (NODATA,
				// say for AAAA when its only link is down, does not).
				want := q.fast && slow.Rcode == mdns.RcodeSuccess && len(slow.Answer) > 0
				var wq wireQuery
				var fast []byte
				ok := parseWire(v, q.wire, &wq)
				if ok {
					fast, ok = s.fastAnswer(v, q.wire, &wq, nil)
				}
				if ok != want {
					t.Errorf("%s %v %s: fast path taken %v, want %v", fields, down, q.name, ok, want)
				}
				if !ok {
					continue
				}
				var got mdns.Msg
				if err := got.Unpack(fast); err != nil {
					t.Fatalf("%s: fast answer does not parse: %v", q.name, err)
				}
				if a, b := canon(&got), canon(slow); a != b {
					t.Errorf("%s %v %s:\nfast    %s\ngeneral %s", fields, down, q.name, a, b)
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canon renders a message with its answers sorted (rotation and weighted
// draws differ between two answers).
func canon(m *mdns.Msg) string {
	var ans []string
	for _, rr := range m.Answer {
		ans = append(ans, rr.String())
	}
	sort.Strings(ans)
	var extra []string
	for _, rr := range m.Extra {
		extra = append(extra, rr.String())
	}
	h := m.MsgHdr
	return strings.Join([]string{
		mdns.RcodeToString[h.Rcode], flag(h.Authoritative, "aa"), flag(h.RecursionDesired, "rd"), flag(h.RecursionAvailable, "ra"),
		flag(h.CheckingDisabled, "cd"), flag(h.Truncated, "tc"), m.Question[0].String(), strings.Join(ans, "|"), strings.Join(extra, "|"),
	}, " ")
}

func flag(b bool, s string) string {
	if b {
		return s
	}
	return "-"
}

type fastQuery struct {
	name string
	wire []byte
	fast bool
}

func fastQueries() []fastQuery {
	var out []fastQuery
	add := func(name string, fast bool, m *mdns.Msg, mod ...func(*mdns.Msg)) {
		for _, f := range mod {
			f(m)
		}
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		out = append(out, fastQuery{name, b, fast})
	}
	q := func(n string, t uint16) *mdns.Msg { return new(mdns.Msg).SetQuestion(n, t) }
	add("A", true, q("www.example.com.", mdns.TypeA))
	add("AAAA", true, q("www.example.com.", mdns.TypeAAAA))
	add("mixed case", true, q("wWw.EXAMPLE.com.", mdns.TypeA))
	add("no RD, CD", true, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.RecursionDesired = false; m.CheckingDisabled = true })
	add("EDNS", true, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.SetEdns0(4096, false) })
	add("EDNS DO", true, q("www.example.com.", mdns.TypeAAAA), func(m *mdns.Msg) { m.SetEdns0(1232, true) })
	add("EDNS small", true, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.SetEdns0(100, false) })
	add("ECS", false, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_SUBNET{Code: 8, Family: 1, SourceNetmask: 0, Address: net.IPv4zero})
	})
	add("EDNS v1", false, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) })
	add("static name", false, q("ns1.example.com.", mdns.TypeA))
	add("MX", false, q("www.example.com.", mdns.TypeMX))
	add("missing", false, q("nope.example.com.", mdns.TypeA))
	add("outside", false, q("www.example.org.", mdns.TypeA))
	add("class CH", false, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })
	add("notify", false, q("www.example.com.", mdns.TypeA), func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify })
	add("escaped name", false, q(`w\.w.example.com.`, mdns.TypeA))
	return out
}
