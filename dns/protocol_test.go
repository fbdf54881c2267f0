package dns

import (
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func bigTXT() string {
	var b strings.Builder
	b.WriteString("big TXT")
	for range 12 {
		b.WriteString(` "` + strings.Repeat("x", 200) + `"`)
	}
	return b.String()
}

func protoConfig(t testing.TB) string {
	return baseLinks + strings.Replace(baseDNS, `        - "a.b.c A 192.0.2.9"`, `        - "a.b.c A 192.0.2.9"
        - '`+bigTXT()+`'`, 1)
}

func TestProtocol(t *testing.T) {
	ts := startServer(t, parseConfig(t, protoConfig(t)), newFakeSource("isp1", "isp2"), nil)

	edns := func(size uint16) func(*mdns.Msg) { return func(m *mdns.Msg) { m.SetEdns0(size, false) } }
	type check func(t *testing.T, r *mdns.Msg)
	rcode := func(rc int) check {
		return func(t *testing.T, r *mdns.Msg) {
			if r.Rcode != rc {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[rc])
			}
		}
	}
	aa := func(want bool) check {
		return func(t *testing.T, r *mdns.Msg) {
			if r.Authoritative != want {
				t.Errorf("AA=%v, want %v", r.Authoritative, want)
			}
		}
	}
	noRA := func(t *testing.T, r *mdns.Msg) {
		if r.RecursionAvailable {
			t.Error("RA set: we do no recursion")
		}
	}
	answers := func(n int) check {
		return func(t *testing.T, r *mdns.Msg) {
			if len(r.Answer) != n {
				t.Errorf("%d answers, want %d:\n%v", len(r.Answer), n, r)
			}
		}
	}
	soaAuth := func(t *testing.T, r *mdns.Msg) {
		if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA {
			t.Errorf("want the SOA alone in authority, got %v", r.Ns)
			return
		}
		soa := r.Ns[0].(*mdns.SOA)
		if soa.Hdr.Ttl != soa.Minttl {
			t.Errorf("negative SOA TTL %d, want min(TTL, minimum) = %d", soa.Hdr.Ttl, soa.Minttl)
		}
	}
	answerType := func(i int, typ uint16, owner string) check {
		return func(t *testing.T, r *mdns.Msg) {
			if len(r.Answer) <= i {
				t.Errorf("no answer %d", i)
				return
			}
			h := r.Answer[i].Header()
			if h.Rrtype != typ || h.Name != owner {
				t.Errorf("answer %d is %s %s, want %s %s", i, h.Name, mdns.TypeToString[h.Rrtype], owner, mdns.TypeToString[typ])
			}
		}
	}
	extra := func(name string, typ uint16) check {
		return func(t *testing.T, r *mdns.Msg) {
			for _, rr := range r.Extra {
				if rr.Header().Name == name && rr.Header().Rrtype == typ {
					return
				}
			}
			t.Errorf("no %s %s in additional: %v", name, mdns.TypeToString[typ], r.Extra)
		}
	}
	opt := func(size uint16) check {
		return func(t *testing.T, r *mdns.Msg) {
			o := r.IsEdns0()
			if o == nil {
				t.Error("no OPT in the answer to an EDNS query")
				return
			}
			if o.UDPSize() != size {
				t.Errorf("advertised UDP size %d, want %d", o.UDPSize(), size)
			}
		}
	}
	noOPT := func(t *testing.T, r *mdns.Msg) {
		if r.IsEdns0() != nil {
			t.Error("OPT in the answer to a query without EDNS")
		}
	}
	tc := func(want bool) check {
		return func(t *testing.T, r *mdns.Msg) {
			if r.Truncated != want {
				t.Errorf("TC=%v, want %v", r.Truncated, want)
			}
		}
	}

	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		tcp    bool
		mods   []func(*mdns.Msg)
		checks []check
	}{
		{"A of a steered name", "www.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(0), aa(true), noRA, answers(2), answerType(0, mdns.TypeA, "www.example.com."), noOPT}},
		{"AAAA of a steered name", "www.example.com.", mdns.TypeAAAA, false, nil,
			[]check{rcode(0), aa(true), answers(2), answerType(0, mdns.TypeAAAA, "www.example.com.")}},
		{"recursion desired is ignored", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){func(m *mdns.Msg) { m.RecursionDesired = true }},
			[]check{rcode(0), aa(true), noRA, answers(2)}},
		{"NXDOMAIN with SOA", "nope.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(mdns.RcodeNameError), aa(true), answers(0), soaAuth}},
		{"NODATA with SOA", "www.example.com.", mdns.TypeTXT, false, nil,
			[]check{rcode(0), aa(true), answers(0), soaAuth}},
		{"empty non-terminal is NODATA", "b.c.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(0), aa(true), answers(0), soaAuth}},
		{"outside our zones: REFUSED", "example.org.", mdns.TypeA, false, nil,
			[]check{rcode(mdns.RcodeRefused), aa(false), answers(0), noRA}},
		{"parent of our zone: REFUSED", "com.", mdns.TypeNS, false, nil,
			[]check{rcode(mdns.RcodeRefused), answers(0)}},
		{"ANY over UDP: RFC 8482 HINFO", "www.example.com.", mdns.TypeANY, false, nil,
			[]check{rcode(0), answers(1), answerType(0, mdns.TypeHINFO, "www.example.com.")}},
		{"ANY over TCP: everything", "www.example.com.", mdns.TypeANY, true, nil,
			[]check{rcode(0), answers(4)}},
		{"ANY of a missing name: NXDOMAIN", "nope.example.com.", mdns.TypeANY, false, nil,
			[]check{rcode(mdns.RcodeNameError), soaAuth}},
		{"case preserved", "WwW.ExAmPlE.CoM.", mdns.TypeA, false, nil,
			[]check{rcode(0), answers(2), answerType(0, mdns.TypeA, "WwW.ExAmPlE.CoM."), func(t *testing.T, r *mdns.Msg) {
				if r.Question[0].Name != "WwW.ExAmPlE.CoM." {
					t.Errorf("question rewritten to %s", r.Question[0].Name)
				}
			}}},
		{"case preserved on static data", "MAIL.example.COM.", mdns.TypeA, false, nil,
			[]check{rcode(0), answers(1), answerType(0, mdns.TypeA, "MAIL.example.COM.")}},
		{"MX with additional address", "example.com.", mdns.TypeMX, false, nil,
			[]check{rcode(0), answers(1), extra("mail.example.com.", mdns.TypeA)}},
		{"NS with additional address", "example.com.", mdns.TypeNS, false, nil,
			[]check{rcode(0), answers(1), extra("ns1.example.com.", mdns.TypeA)}},
		{"SOA", "example.com.", mdns.TypeSOA, false, nil,
			[]check{rcode(0), answers(1), answerType(0, mdns.TypeSOA, "example.com.")}},
		{"TXT", "example.com.", mdns.TypeTXT, false, nil, []check{rcode(0), answers(1)}},
		{"CAA", "example.com.", mdns.TypeCAA, false, nil, []check{rcode(0), answers(1)}},
		{"SRV with steered target in additional", "_sip._tcp.example.com.", mdns.TypeSRV, false, nil,
			[]check{rcode(0), answers(1), extra("www.example.com.", mdns.TypeA)}},
		{"CNAME chased to a steered name", "alias.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(0), answers(3), answerType(0, mdns.TypeCNAME, "alias.example.com."), answerType(1, mdns.TypeA, "www.example.com.")}},
		{"CNAME asked for", "alias.example.com.", mdns.TypeCNAME, false, nil, []check{rcode(0), answers(1)}},
		{"wildcard", "foo.wild.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(0), answers(1), answerType(0, mdns.TypeA, "foo.wild.example.com.")}},
		{"wildcard NODATA", "foo.wild.example.com.", mdns.TypeAAAA, false, nil, []check{rcode(0), answers(0), soaAuth}},
		{"referral below a delegation", "x.sub.example.com.", mdns.TypeA, false, nil,
			[]check{rcode(0), aa(false), answers(0), extra("ns.sub.example.com.", mdns.TypeA), func(t *testing.T, r *mdns.Msg) {
				if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeNS {
					t.Errorf("want the delegation NS in authority, got %v", r.Ns)
				}
			}}},
		{"EDNS answered with our buffer size", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(4096)},
			[]check{rcode(0), answers(2), opt(1232)}},
		{"EDNS version 1: BADVERS", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(4096), func(m *mdns.Msg) { m.IsEdns0().SetVersion(1) }},
			[]check{rcode(mdns.RcodeBadVers), answers(0), opt(1232)}},
		{"DO bit copied", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){func(m *mdns.Msg) { m.SetEdns0(1232, true) }},
			[]check{rcode(0), func(t *testing.T, r *mdns.Msg) {
				if o := r.IsEdns0(); o == nil || !o.Do() {
					t.Error("DO bit not copied")
				}
			}}},
		{"ECS echoed with scope 0", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(1232), ecs(1, 24, "192.0.2.0", 0)},
			[]check{rcode(0), answers(2), func(t *testing.T, r *mdns.Msg) {
				e := ecsOf(r)
				if e == nil {
					t.Fatal("ECS option not echoed")
				}
				if e.SourceScope != 0 || e.SourceNetmask != 24 || e.Family != 1 || !e.Address.Equal(net.ParseIP("192.0.2.0")) {
					t.Errorf("ECS echoed as %v", e)
				}
			}}},
		{"ECS family 0 (dig +subnet=0) echoed", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(1232), ecs(0, 0, "", 0)},
			[]check{rcode(0), answers(2), func(t *testing.T, r *mdns.Msg) {
				if e := ecsOf(r); e == nil || e.SourceScope != 0 {
					t.Errorf("ECS echoed as %v", e)
				}
			}}},
		{"ECS IPv6 echoed", "www.example.com.", mdns.TypeAAAA, false, []func(*mdns.Msg){edns(1232), ecs(2, 56, "2001:db8:aa00::", 0)},
			[]check{rcode(0), func(t *testing.T, r *mdns.Msg) {
				if e := ecsOf(r); e == nil || e.SourceScope != 0 || e.SourceNetmask != 56 {
					t.Errorf("ECS echoed as %v", e)
				}
			}}},
		{"ECS with a scope in the query: FORMERR", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(1232), ecs(1, 24, "192.0.2.0", 16)},
			[]check{rcode(mdns.RcodeFormatError)}},
		{"ECS with host bits: FORMERR", "www.example.com.", mdns.TypeA, false, []func(*mdns.Msg){edns(1232), func(m *mdns.Msg) {
			// 192.0.3.0/23 on the wire: a bit set past the prefix.
			o := m.IsEdns0()
			o.Option = append(o.Option, &mdns.EDNS0_LOCAL{Code: mdns.EDNS0SUBNET, Data: []byte{0, 1, 23, 0, 192, 0, 3}})
		}},
			[]check{rcode(mdns.RcodeFormatError)}},
		{"big answer without EDNS: TC", "big.example.com.", mdns.TypeTXT, false, nil,
			[]check{rcode(0), tc(true)}},
		{"big answer with EDNS 4096: TC at our 1232", "big.example.com.", mdns.TypeTXT, false, []func(*mdns.Msg){edns(4096)},
			[]check{rcode(0), tc(true), opt(1232)}},
		{"big answer over TCP: whole", "big.example.com.", mdns.TypeTXT, true, nil,
			[]check{rcode(0), tc(false), answers(1)}},
		{"NOTIFY to us: NOTIMP", "example.com.", mdns.TypeSOA, false, []func(*mdns.Msg){func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify }},
			[]check{rcode(mdns.RcodeNotImplemented)}},
		{"UPDATE: NOTIMP", "example.com.", mdns.TypeSOA, true, []func(*mdns.Msg){func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate }},
			[]check{rcode(mdns.RcodeNotImplemented)}},
		{"CHAOS class: REFUSED", "version.bind.", mdns.TypeTXT, false, []func(*mdns.Msg){func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS }},
			[]check{rcode(mdns.RcodeRefused)}},
		{"AXFR over UDP: NOTIMP", "example.com.", mdns.TypeAXFR, false, nil, []check{rcode(mdns.RcodeNotImplemented)}},
		{"IXFR over UDP from a stranger: REFUSED", "example.com.", mdns.TypeIXFR, false, nil, []check{rcode(mdns.RcodeRefused)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r *mdns.Msg
			if c.tcp {
				r = ts.queryTCP(t, c.qname, c.qtype, c.mods...)
			} else {
				r = ts.query(t, c.qname, c.qtype, c.mods...)
			}
			for _, ck := range c.checks {
				ck(t, r)
			}
		})
	}
}

func ecs(family uint16, mask uint8, addr string, scope uint8) func(*mdns.Msg) {
	return func(m *mdns.Msg) {
		o := m.IsEdns0()
		o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: family, SourceNetmask: mask, SourceScope: scope, Address: net.ParseIP(addr)})
	}
}

func ecsOf(r *mdns.Msg) *mdns.EDNS0_SUBNET {
	if o := r.IsEdns0(); o != nil {
		for _, x := range o.Option {
			if e, ok := x.(*mdns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

// TestTruncationFallback: a truncated UDP answer, retried over TCP as a
// resolver would, gives the whole answer.
func TestTruncationFallback(t *testing.T) {
	ts := startServer(t, parseConfig(t, protoConfig(t)), newFakeSource("isp1", "isp2"), nil)
	r := ts.query(t, "big.example.com.", mdns.TypeTXT)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Fatalf("UDP: TC=%v with %d answers, want a truncated empty answer", r.Truncated, len(r.Answer))
	}
	r = ts.queryTCP(t, "big.example.com.", mdns.TypeTXT)
	if r.Truncated || len(r.Answer) != 1 || len(r.Answer[0].(*mdns.TXT).Txt) != 12 {
		t.Fatalf("TCP: TC=%v answers %d", r.Truncated, len(r.Answer))
	}
	if st := ts.Stats(); st.Truncated == 0 || st.TCP == 0 {
		t.Errorf("stats: truncated %d tcp %d", st.Truncated, st.TCP)
	}
}

// TestMalformed: garbage never gets an answer beyond FORMERR, responses
// get none.
func TestMalformed(t *testing.T) {
	ts := startServer(t, parseConfig(t, protoConfig(t)), newFakeSource("isp1", "isp2"), nil)
	c, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() []byte {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b := make([]byte, 512)
		n, err := c.Read(b)
		if err != nil {
			return nil
		}
		return b[:n]
	}
	// A header announcing a question that is not there.
	c.Write([]byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w'})
	b := read()
	if len(b) != 12 || b[0] != 0x12 || b[1] != 0x34 || b[2]&0x80 == 0 || b[3]&0xf != mdns.RcodeFormatError {
		t.Errorf("malformed query: got %x, want a FORMERR header", b)
	}
	// A response must not be answered (no reflection loops).
	resp := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
	resp.Response = true
	p, _ := resp.Pack()
	c.Write(p)
	if b := read(); b != nil {
		t.Errorf("answered a response: %x", b)
	}
	// Too short for a header.
	c.Write([]byte{1, 2, 3})
	if b := read(); b != nil {
		t.Errorf("answered 3 bytes: %x", b)
	}
	// Still serving.
	if r := ts.query(t, "www.example.com.", mdns.TypeA); len(r.Answer) != 2 {
		t.Errorf("after garbage: %v", r)
	}
}

func TestIPv6Listener(t *testing.T) {
	ln, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ln.Close()
	cfg := parseConfig(t, strings.Replace(baseLinks+baseDNS, `listen: ["127.0.0.1:53"]`, `listen: ["[::1]:53"]`, 1))
	ts := startServer(t, cfg, newFakeSource("isp1", "isp2"), nil)
	for _, n := range []string{"udp", "tcp"} {
		r := queryAt(t, n, ts.addr, "www.example.com.", mdns.TypeAAAA)
		if len(r.Answer) != 2 {
			t.Errorf("%s over IPv6: %v", n, r)
		}
	}
}
