package dns

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/netns"
)

// diffZone is the zone both servers load from the same file. Knot also
// gets diffSteered, the static form of multihome's health-steered www
// with both links up.
const diffZone = `$ORIGIN example.com.
$TTL 300
@ 3600 SOA ns1 hostmaster 2100000000 3600 600 604800 30
@ NS ns1
@ NS ns2
ns1 A 198.51.100.3
ns2 AAAA 2001:db8::53
@ MX 10 mail
@ TXT "v=spf1 -all"
@ CAA 0 issue "letsencrypt.org"
mail A 198.51.100.25
mail AAAA 2001:db8::25
alias CNAME www
chain1 CNAME chain2
chain2 CNAME alias
dangle CNAME nothere
ext CNAME www.example.net.
cw CNAME x.wild
_sip._tcp SRV 10 5 5060 www
_sip._udp SRV 10 5 5060 mail
*.wild A 192.0.2.7
*.wild TXT "wild"
*.cwild CNAME mail
sub NS ns.sub
sub NS ns.elsewhere.net.
ns.sub A 192.0.2.53
a.b.c A 192.0.2.9
1.2.0.192.in-addr PTR www.example.com.
host HINFO "amd64" "linux"
host SSHFP 4 2 123456789abcdef67890123456789abcdef67890123456789abcdef123456789
_443._tcp.www2 TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
www2 A 192.0.2.80
nap NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
Mixed A 192.0.2.33
big TXT "` + "%[1]s" + `" "%[1]s" "%[1]s"
bigmx MX 10 mx01
bigmx MX 10 mx02
bigmx MX 10 mx03
bigmx MX 10 mx04
bigmx MX 10 mx05
bigmx MX 10 mx06
bigmx MX 10 mx07
bigmx MX 10 mx08
bigmx MX 10 mx09
bigmx MX 10 mx10
bigmx MX 10 mx11
bigmx MX 10 mx12
`

const diffSteered = `www 30 A 198.51.100.2
www 30 A 198.51.100.18
www 30 AAAA 2001:db8:1::2
www 30 AAAA 2001:db8:2::2
`

func diffZoneText() string {
	z := fmt.Sprintf(diffZone, strings.Repeat("y", 200))
	for i := 1; i <= 12; i++ {
		z += fmt.Sprintf("mx%02d A 203.0.113.%d\nmx%02d AAAA 2001:db8:25::%d\n", i, i, i, i)
	}
	return z
}

const diffYAML = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      file: %s
      names:
        - name: www
          ttl: 30s
          records:
            - {link: isp1, a: 198.51.100.2, aaaa: "2001:db8:1::2"}
            - {link: isp2, a: 198.51.100.18, aaaa: "2001:db8:2::2"}
`

// diffKnot starts knotd in ns serving zone text on 127.0.0.1:5353.
func diffKnot(t *testing.T, ns, zone string) string {
	t.Helper()
	bin, err := exec.LookPath("knotd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/knotd"); err2 != nil {
			t.Skip("knotd not installed (apt-get install knot)")
		}
		bin = "/usr/sbin/knotd"
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@5353
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "%[1]s/db"
zone:
  - domain: example.com
    storage: "%[1]s"
    file: "example.com.zone"
    zonefile-sync: -1
`, dir)
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &knot{ns: ns, dir: dir, addr: "127.0.0.1:5353"}
	k.start(t, bin)
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("knotd log:\n%s", k.logs())
		}
	})
	return k.addr
}

// diffQuery is one query of the differential test: a message, or raw
// bytes for what miekg will not pack.
type diffQuery struct {
	desc string
	tcp  bool
	ecs  bool // carries a malformed ECS option
	// knotSilent: Knot 3.2 sends nothing (a query with two questions);
	// multihome answers FORMERR (RFC 9619).
	knotSilent bool
	msg        *mdns.Msg
	raw        []byte
}

func (q diffQuery) wire(t *testing.T) []byte {
	if q.raw != nil {
		return q.raw
	}
	b, err := q.msg.Pack()
	if err != nil {
		t.Fatalf("%s: pack: %v", q.desc, err)
	}
	return b
}

// exchangeRaw sends b to addr inside ns ("": this namespace) and
// returns the raw answer.
func exchangeRaw(ns, addr string, b []byte, tcp bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var c net.Conn
	var err error
	if ns == "" {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
	} else {
		c, err = netns.DialContext(ctx, ns, nil, network, addr)
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if tcp {
		b = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	if !tcp {
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		return buf[:n], err
	}
	var l [2]byte
	if _, err := readFull(c, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = readFull(c, buf)
	return buf, err
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func diffQueries() []diffQuery {
	var qs []diffQuery
	q := func(desc string, tcp bool, name string, qtype uint16, mods ...func(*mdns.Msg)) {
		m := new(mdns.Msg).SetQuestion(name, qtype)
		m.RecursionDesired = false
		m.Id = uint16(len(qs) + 1)
		for _, f := range mods {
			f(m)
		}
		qs = append(qs, diffQuery{desc: desc, tcp: tcp, msg: m})
	}
	edns := func(size uint16, do bool) func(*mdns.Msg) { return func(m *mdns.Msg) { m.SetEdns0(size, do) } }
	names := []string{
		"example.com.", "www.example.com.", "mail.example.com.", "ns1.example.com.", "ns2.example.com.",
		"alias.example.com.", "chain1.example.com.", "dangle.example.com.", "ext.example.com.", "cw.example.com.",
		"_sip._tcp.example.com.", "_tcp.example.com.", "foo.wild.example.com.", "a.b.wild.example.com.", "wild.example.com.",
		"x.cwild.example.com.", "sub.example.com.", "x.sub.example.com.", "ns.sub.example.com.", "a.b.c.example.com.",
		"b.c.example.com.", "nothere.example.com.", "deep.nothere.example.com.", "host.example.com.", "nap.example.com.",
		"_443._tcp.www2.example.com.", "1.2.0.192.in-addr.example.com.", "mixed.example.com.", "example.org.", "bigmx.example.com.",
	}
	types := []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypeNS, mdns.TypeSOA, mdns.TypeCNAME}
	for _, n := range names {
		for _, ty := range types {
			q(n+" "+mdns.TypeToString[ty], false, n, ty)
		}
	}
	for _, c := range []struct {
		name string
		ty   uint16
	}{
		{"example.com.", mdns.TypeCAA}, {"_sip._tcp.example.com.", mdns.TypeSRV}, {"_sip._udp.example.com.", mdns.TypeSRV},
		{"1.2.0.192.in-addr.example.com.", mdns.TypePTR}, {"host.example.com.", mdns.TypeHINFO}, {"host.example.com.", mdns.TypeSSHFP},
		{"_443._tcp.www2.example.com.", mdns.TypeTLSA}, {"nap.example.com.", mdns.TypeNAPTR}, {"sub.example.com.", mdns.TypeDS},
		{"www.example.com.", mdns.TypeDS}, {"example.com.", mdns.TypeDNSKEY}, {"www.example.com.", 65000},
		{"www.example.com.", mdns.TypeRRSIG}, {"www.example.com.", mdns.TypeNSEC}, {"foo.wild.example.com.", mdns.TypeSRV},
	} {
		q(c.name+" "+mdns.TypeToString[c.ty], false, c.name, c.ty)
		q(c.name+" "+mdns.TypeToString[c.ty]+" tcp", true, c.name, c.ty)
	}
	// ANY: RFC 8482 minimal over UDP, everything over TCP.
	for _, n := range []string{"example.com.", "www.example.com.", "alias.example.com.", "host.example.com.", "foo.wild.example.com.", "nothere.example.com.", "sub.example.com."} {
		q(n+" ANY", false, n, mdns.TypeANY)
		q(n+" ANY tcp", true, n, mdns.TypeANY)
	}
	// Case: the owner is spelled as asked.
	for _, n := range []string{"WwW.ExAmPlE.cOm.", "MAIL.EXAMPLE.COM.", "ALIAS.example.com.", "Foo.Wild.Example.Com.", "NoThere.Example.Com.", "X.Sub.Example.Com.", "mIxEd.example.com."} {
		q(n+" A", false, n, mdns.TypeA)
		q(n+" MX", false, n, mdns.TypeMX)
	}
	// EDNS: sizes, DO, and the truncation boundaries.
	for _, size := range []uint16{0, 512, 1232, 4096} {
		for _, n := range []string{"www.example.com.", "big.example.com.", "bigmx.example.com.", "nothere.example.com.", "x.sub.example.com."} {
			ty := mdns.TypeA
			switch n {
			case "big.example.com.":
				ty = mdns.TypeTXT
			case "bigmx.example.com.":
				ty = mdns.TypeMX
			}
			mods := []func(*mdns.Msg){}
			desc := fmt.Sprintf("%s %s no EDNS", n, mdns.TypeToString[ty])
			if size > 0 {
				mods = append(mods, edns(size, size == 1232))
				desc = fmt.Sprintf("%s %s EDNS %d", n, mdns.TypeToString[ty], size)
			}
			q(desc, false, n, ty, mods...)
			if size == 0 {
				q(desc+" tcp", true, n, ty, mods...)
			}
		}
	}
	q("EDNS version 1", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
	})
	q("EDNS version 1 tcp", true, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
	})
	q("two OPT", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT, Class: 1232}})
	})
	q("two OPT tcp", true, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		m.Extra = append(m.Extra, &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT, Class: 1232}})
	})
	for _, tcp := range []bool{false, true} {
		sfx := ""
		if tcp {
			sfx = " tcp"
		}
		q("ECS bad family"+sfx, tcp, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, &mdns.EDNS0_LOCAL{Code: mdns.EDNS0SUBNET, Data: []byte{0, 9, 24, 0, 192, 0, 2}})
		})
		qs[len(qs)-1].ecs = true
		q("ECS source prefix too long"+sfx, tcp, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			o := m.IsEdns0()
			o.Option = append(o.Option, &mdns.EDNS0_LOCAL{Code: mdns.EDNS0SUBNET, Data: []byte{0, 1, 40, 0, 192, 0, 2, 0}})
		})
		qs[len(qs)-1].ecs = true
	}
	q("unknown EDNS option", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &mdns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}})
	})
	// Header variations.
	q("RD set", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.RecursionDesired = true })
	q("CD set", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.CheckingDisabled = true })
	q("opcode STATUS", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeStatus })
	q("class CH", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })
	q("AXFR over UDP", false, "example.com.", mdns.TypeAXFR)
	q("no question", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.Question = nil })
	q("two questions", false, "www.example.com.", mdns.TypeA, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	qs[len(qs)-1].knotSilent = true

	// Raw: an EDNS option whose length runs past the OPT record.
	m := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
	m.Id = uint16(len(qs) + 1)
	m.SetEdns0(1232, false)
	b, _ := m.Pack()
	b = b[:len(b)-2]
	b = append(b, 0, 4, 0, 8, 0, 10, 0, 1) // rdlen 4: option 8, length 10
	qs = append(qs, diffQuery{desc: "EDNS option overruns the OPT", raw: b})
	qs = append(qs, diffQuery{desc: "EDNS option overruns the OPT tcp", raw: b, tcp: true})
	return qs
}

// section renders a section for comparison: sorted, with the OPT apart.
func section(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		// Names compare case-insensitively (RFC 4343): Knot spells names
		// it compresses against the question in the question's case.
		out = append(out, strings.ToLower(rr.String()))
	}
	slices.Sort(out)
	return out
}

func optString(m *mdns.Msg) string {
	o := m.IsEdns0()
	if o == nil {
		return "none"
	}
	var opts []string
	for _, e := range o.Option {
		opts = append(opts, fmt.Sprintf("%d:%s", e.Option(), e.String()))
	}
	return fmt.Sprintf("v%d size %d do %v ext-rcode %d opts %v", o.Version(), o.UDPSize(), o.Do(), o.ExtendedRcode(), opts)
}

func header(m *mdns.Msg) string {
	return fmt.Sprintf("id %d opcode %d rcode %s qr %v aa %v tc %v rd %v ra %v ad %v cd %v", m.Id, m.Opcode,
		mdns.RcodeToString[m.Rcode], m.Response, m.Authoritative, m.Truncated, m.RecursionDesired,
		m.RecursionAvailable, m.AuthenticatedData, m.CheckingDisabled)
}

// allowed lists the documented legal differences between the two
// servers (docs/dns.md repeats them). It returns a reason when the
// difference in section sec is one of them.
func allowed(q diffQuery, sec string, mh, kn *mdns.Msg) string {
	var qtype uint16
	if len(mh.Question) == 1 {
		qtype = mh.Question[0].Qtype
	}
	switch {
	case qtype == mdns.TypeANY && !q.tcp && (sec == "answer" || sec == "additional" || sec == "size") &&
		len(mh.Answer) == 1 && mh.Answer[0].Header().Rrtype == mdns.TypeHINFO:
		return "RFC 8482 section 4.2: multihome answers ANY over UDP with one synthesized HINFO"
	case qtype == mdns.TypeANY && (sec == "answer" || sec == "additional" || sec == "size") &&
		subset(section(kn.Answer), section(mh.Answer)):
		return "RFC 8482 section 4.1: Knot answers ANY with one RRset, multihome over TCP with all of them"
	case sec == "additional" && !mh.Truncated && !kn.Truncated && subset(section(mh.Extra), section(kn.Extra)):
		return "additional section cut at another record near the size limit (RFC 2181 section 9: no TC either way)"
	case sec == "header" && mh.CheckingDisabled && !kn.CheckingDisabled &&
		strings.Replace(header(mh), "cd true", "cd false", 1) == header(kn):
		return "RFC 4035 section 3.1.6: multihome copies CD into the response, Knot 3.2 clears it"
	case sec == "size" && len(mh.Question) == 1 && mh.Question[0].Name != strings.ToLower(mh.Question[0].Name):
		return "mixed-case query: multihome compresses the zone's names against the question only where they are spelled alike"
	case q.ecs && kn.Rcode == mdns.RcodeSuccess && mh.Rcode == mdns.RcodeFormatError && sec != "question" && sec != "opt":
		return "RFC 7871 section 7.1.1: multihome answers a malformed ECS option FORMERR; Knot 3.2 without its ECS module ignores the option"
	}
	return ""
}

// subset reports whether every record of a (lower-cased) is in b.
func subset(a, b []string) bool {
	for _, r := range a {
		if !slices.Contains(b, r) {
			return false
		}
	}
	return true
}

func compareAnswers(q diffQuery, mhb, knb []byte) []string {
	mh, kn := new(mdns.Msg), new(mdns.Msg)
	if err := mh.Unpack(mhb); err != nil {
		return []string{fmt.Sprintf("multihome answer does not parse: %v", err)}
	}
	if err := kn.Unpack(knb); err != nil {
		return []string{fmt.Sprintf("knot answer does not parse: %v", err)}
	}
	var diffs []string
	cmp := func(sec, a, b string) {
		if a != b && allowed(q, sec, mh, kn) == "" {
			diffs = append(diffs, fmt.Sprintf("%s:\n  multihome: %s\n  knot:      %s", sec, a, b))
		}
	}
	cmp("header", header(mh), header(kn))
	cmp("question", fmt.Sprint(mh.Question), fmt.Sprint(kn.Question))
	cmp("answer", strings.Join(section(mh.Answer), " | "), strings.Join(section(kn.Answer), " | "))
	cmp("authority", strings.Join(section(mh.Ns), " | "), strings.Join(section(kn.Ns), " | "))
	cmp("additional", strings.Join(section(mh.Extra), " | "), strings.Join(section(kn.Extra), " | "))
	cmp("opt", optString(mh), optString(kn))
	// Compression: never bigger than Knot's answer.
	if len(mhb) > len(knb) && allowed(q, "size", mh, kn) == "" {
		diffs = append(diffs, fmt.Sprintf("size: multihome %d bytes, knot %d", len(mhb), len(knb)))
	}
	return diffs
}

// TestKnotDifferential serves the same zone with multihome and a real
// Knot in a namespace, asks both the same queries over UDP and TCP, and
// compares the answers section by section. Any difference not in
// allowed fails: multihome must not drift from Knot's reading of the RFCs.
func TestKnotDifferential(t *testing.T) {
	ns := testNS(t, "kdiff")
	zone := diffZoneText()
	knotAddr := diffKnot(t, ns, zone+diffSteered)
	path := filepath.Join(t.TempDir(), "example.com.zone")
	if err := os.WriteFile(path, []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, parseConfig(t, fmt.Sprintf(diffYAML, path)), newFakeSource("isp1", "isp2"), inNS(ns))

	qs := diffQueries()
	if len(qs) < 130 {
		t.Fatalf("only %d queries", len(qs))
	}
	failed := 0
	for _, q := range qs {
		b := q.wire(t)
		mhb, err := exchangeRaw(ns, ts.addr, b, q.tcp)
		if err != nil {
			t.Errorf("%s: multihome: %v", q.desc, err)
			failed++
			continue
		}
		if !q.tcp {
			// Again, from the UDP reader's answer cache this time (or not
			// cached): the same answer.
			again, err := exchangeRaw(ns, ts.addr, b, false)
			if err != nil || !sameAnswer(mhb, again) {
				t.Errorf("%s: asked twice, multihome answered differently (%v):\n%x\n%x", q.desc, err, mhb, again)
			}
		}
		mh := new(mdns.Msg)
		if q.knotSilent {
			if err := mh.Unpack(mhb); err != nil || mh.Rcode != mdns.RcodeFormatError {
				t.Errorf("%s: multihome answered %v (%v), want FORMERR", q.desc, mh, err)
				failed++
			}
			continue
		}
		knb, err := exchangeRaw(ns, knotAddr, b, q.tcp)
		if err != nil {
			t.Errorf("%s: knot: %v", q.desc, err)
			failed++
			continue
		}
		if d := compareAnswers(q, mhb, knb); len(d) > 0 {
			t.Errorf("%s:\n%s", q.desc, strings.Join(d, "\n"))
			failed++
		}
	}
	t.Logf("%d queries, %d differ", len(qs), failed)
}

// sameAnswer compares two answers to one query; steered answers rotate,
// so their sections compare as sets.
func sameAnswer(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	ma, mb := new(mdns.Msg), new(mdns.Msg)
	if ma.Unpack(a) != nil || mb.Unpack(b) != nil {
		return false
	}
	// A cached answer may spell names in the query's case where the
	// first one spelled them as the zone does (RFC 4343).
	return header(ma) == header(mb) && strings.EqualFold(canon(ma), canon(mb))
}
