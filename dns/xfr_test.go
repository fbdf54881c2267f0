package dns

import (
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/monitor"
)

const testSecret = "bXVsdGlob21lLXRlc3Qtc2VjcmV0LWtleS0xMjM0NTY=" // base64 of a test string

// xfr runs a zone transfer of example.com from local address from, signed
// with key when not empty. It returns the records, or the error.
func xfr(t *testing.T, addr, from string, qtype uint16, serial uint32, key string) ([]mdns.RR, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &mdns.Transfer{Conn: &mdns.Conn{Conn: c}}
	m := new(mdns.Msg)
	if qtype == mdns.TypeIXFR {
		m.SetIxfr("example.com.", serial, "ns1.example.com.", "hostmaster.example.com.")
	} else {
		m.SetAxfr("example.com.")
	}
	if key != "" {
		m.SetTsig(key, mdns.HmacSHA256, 300, time.Now().Unix())
		tr.TsigSecret = map[string]string{key: testSecret}
	}
	env, err := tr.In(m, addr)
	if err != nil {
		return nil, err
	}
	var rrs []mdns.RR
	for e := range env {
		if e.Error != nil {
			return rrs, e.Error
		}
		rrs = append(rrs, e.RR...)
	}
	return rrs, nil
}

func hasRR(rrs []mdns.RR, s string) bool {
	for _, rr := range rrs {
		if strings.Join(strings.Fields(rr.String()), " ") == s {
			return true
		}
	}
	return false
}

func TestAXFR(t *testing.T) {
	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, parseConfig(t, baseLinks+baseDNS), src, nil)

	rrs, err := xfr(t, ts.addr, "127.0.0.2", mdns.TypeAXFR, 0, "")
	if err != nil {
		t.Fatalf("AXFR from an allowed secondary: %v", err)
	}
	if len(rrs) < 3 || rrs[0].Header().Rrtype != mdns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != mdns.TypeSOA {
		t.Fatalf("AXFR not framed by SOAs: %v", rrs)
	}
	for _, want := range []string{
		"www.example.com. 30 IN A 198.51.100.2",
		"www.example.com. 30 IN A 198.51.100.18",
		"www.example.com. 30 IN AAAA 2001:db8:1::2",
		"mail.example.com. 3600 IN A 198.51.100.25",
		"example.com. 3600 IN NS ns1.example.com.",
	} {
		if !hasRR(rrs, want) {
			t.Errorf("AXFR lacks %q", want)
		}
	}
	serial := rrs[0].(*mdns.SOA).Serial

	if _, err := xfr(t, ts.addr, "127.0.0.1", mdns.TypeAXFR, 0, ""); err == nil || !strings.Contains(err.Error(), "5") && !strings.Contains(strings.ToLower(err.Error()), "refused") {
		t.Errorf("AXFR from a stranger: err %v, want REFUSED", err)
	}

	// IXFR: up to date → the SOA alone; behind → a full transfer.
	rrs, err = xfr(t, ts.addr, "127.0.0.2", mdns.TypeIXFR, serial, "")
	if err != nil || len(rrs) != 1 {
		t.Errorf("IXFR at the current serial: %v %v", rrs, err)
	}
	src.state("isp1", monitor.Down)
	eventually(t, 2*time.Second, "serial bump", func() bool {
		return ts.query(t, "example.com.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial != serial
	})
	rrs, err = xfr(t, ts.addr, "127.0.0.2", mdns.TypeIXFR, serial, "")
	if err != nil {
		t.Fatalf("IXFR behind: %v", err)
	}
	if hasRR(rrs, "www.example.com. 30 IN A 198.51.100.2") || !hasRR(rrs, "www.example.com. 30 IN A 198.51.100.18") {
		t.Errorf("IXFR after isp1 went down still has its address, or lost isp2's: %v", rrs)
	}
	// The server counts a transfer once it has sent it all: maybe just
	// after the client has read it.
	eventually(t, time.Second, "2 transfers and 1 refusal counted", func() bool {
		st := ts.Stats()
		return st.TransfersOut == 2 && st.TransfersRefused == 1
	})
}

func TestAXFRWithTSIG(t *testing.T) {
	y := strings.Replace(baseLinks+baseDNS, "  rrl: {disable: true}\n",
		"  rrl: {disable: true}\n  keys: [{name: xfr-key, secret: \""+testSecret+"\"}]\n", 1)
	y = strings.Replace(y, "transfer: {allow: [127.0.0.2/32]}", "transfer: {allow: [127.0.0.0/8], key: xfr-key}", 1)
	ts := startServer(t, parseConfig(t, y), newFakeSource("isp1", "isp2"), nil)

	rrs, err := xfr(t, ts.addr, "127.0.0.2", mdns.TypeAXFR, 0, "xfr-key.")
	if err != nil || !hasRR(rrs, "www.example.com. 30 IN A 198.51.100.2") {
		t.Fatalf("signed AXFR: %v (%d records)", err, len(rrs))
	}
	if _, err := xfr(t, ts.addr, "127.0.0.2", mdns.TypeAXFR, 0, ""); err == nil {
		t.Error("unsigned AXFR accepted by a zone that requires a key")
	}
	// A signed query over UDP gets a signed answer that verifies.
	m := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
	m.SetTsig("xfr-key.", mdns.HmacSHA256, 300, time.Now().Unix())
	c := &mdns.Client{TsigSecret: map[string]string{"xfr-key.": testSecret}}
	r, _, err := c.Exchange(m, ts.addr)
	if err != nil || r.IsTsig() == nil || len(r.Answer) != 2 {
		t.Errorf("signed UDP query: %v %v", r, err)
	}
	// A bad signature: NOTAUTH.
	c.TsigSecret["xfr-key."] = "d3Jvbmc="
	m.SetTsig("xfr-key.", mdns.HmacSHA256, 300, time.Now().Unix())
	m.Extra = m.Extra[:1]
	r, _, _ = c.Exchange(m, ts.addr)
	if r == nil || r.Rcode != mdns.RcodeNotAuth {
		t.Errorf("badly signed query: %v", r)
	}
}
