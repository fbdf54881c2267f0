package dns

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	mdns "github.com/miekg/dns"
)

// rfcServer serves the differential test's zone on loopback.
func rfcServer(t *testing.T) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "example.com.zone")
	if err := os.WriteFile(path, []byte(diffZoneText()), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServer(t, parseConfig(t, fmt.Sprintf(diffYAML, path)), newFakeSource("isp1", "isp2"), nil)
}

// rawQuery sends m (or raw, when given) and returns the parsed answer and
// its size on the wire.
func rawQuery(t *testing.T, ts *testServer, tcp bool, m *mdns.Msg, raw []byte) (*mdns.Msg, int) {
	t.Helper()
	b := raw
	if b == nil {
		var err error
		if b, err = m.Pack(); err != nil {
			t.Fatal(err)
		}
	}
	rb, err := exchangeRaw("", ts.addr, b, tcp)
	if err != nil {
		t.Fatalf("exchange (tcp %v): %v", tcp, err)
	}
	r := new(mdns.Msg)
	if err := r.Unpack(rb); err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	return r, len(rb)
}

func newQuery(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg).SetQuestion(name, qtype)
	m.RecursionDesired = false
	return m
}

// TestRFCDeviations pins the five answers where multihome used to differ
// from Knot and the RFCs, and name compression.
func TestRFCDeviations(t *testing.T) {
	ts := rfcServer(t)
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) {
			// 1. RFC 2181 section 9: no TC when only the additional section
			// overflows (12 MX targets, no EDNS: 512 bytes).
			if !tcp {
				r, n := rawQuery(t, ts, tcp, newQuery("bigmx.example.com.", mdns.TypeMX), nil)
				if r.Truncated || len(r.Answer) != 12 || len(r.Extra) == 0 || n > 512 {
					t.Errorf("bigmx MX: TC %v, %d answers, %d additional, %d bytes; want TC 0, 12, some, ≤ 512", r.Truncated, len(r.Answer), len(r.Extra), n)
				}
				// ... but TC when the answer itself does not fit.
				if r, _ := rawQuery(t, ts, tcp, newQuery("big.example.com.", mdns.TypeTXT), nil); !r.Truncated {
					t.Error("big TXT over 512 bytes: no TC")
				}
			}
			// 2. RFC 6891 section 6.1.1: two OPT records are a format error.
			m := newQuery("www.example.com.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT, Class: 1232}})
			if r, _ := rawQuery(t, ts, tcp, m, nil); r.Rcode != mdns.RcodeFormatError || len(r.Answer) > 0 {
				t.Errorf("two OPT: rcode %s, %d answers; want FORMERR", mdns.RcodeToString[r.Rcode], len(r.Answer))
			}
			// 3. RFC 6891 section 7: FORMERR for a malformed option (ECS of
			// an unknown family, RFC 7871) carries an OPT, and the question.
			m = newQuery("www.example.com.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_LOCAL{Code: mdns.EDNS0SUBNET, Data: []byte{0, 9, 24, 0, 192, 0, 2}})
			if r, _ := rawQuery(t, ts, tcp, m, nil); r.Rcode != mdns.RcodeFormatError || r.IsEdns0() == nil || len(r.Question) != 1 {
				t.Errorf("bad ECS: rcode %s, OPT %v, %d questions; want FORMERR with OPT and question", mdns.RcodeToString[r.Rcode], r.IsEdns0() != nil, len(r.Question))
			}
			// 4. BADVERS keeps the question.
			m = newQuery("www.example.com.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			if r, _ := rawQuery(t, ts, tcp, m, nil); r.Rcode != mdns.RcodeBadVers || len(r.Question) != 1 {
				t.Errorf("EDNS version 1: rcode %s, %d questions; want BADVERS with the question", mdns.RcodeToString[r.Rcode], len(r.Question))
			}
			// 5. RFC 1034 section 3.6.2: ANY at a CNAME owner is the CNAME.
			if r, _ := rawQuery(t, ts, tcp, newQuery("alias.example.com.", mdns.TypeANY), nil); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != mdns.TypeCNAME {
				t.Errorf("alias ANY: %v; want the CNAME alone", r.Answer)
			}
			// Compression: mail A is 50 bytes (Knot's size), not 66.
			if _, n := rawQuery(t, ts, tcp, newQuery("mail.example.com.", mdns.TypeA), nil); n != 50 {
				t.Errorf("mail A is %d bytes, want 50 (names compressed)", n)
			}
			if _, n := rawQuery(t, ts, tcp, newQuery("nothere.example.com.", mdns.TypeA), nil); n > 88 {
				t.Errorf("NXDOMAIN is %d bytes, want ≤ 88 (names compressed)", n)
			}
		})
	}
}
