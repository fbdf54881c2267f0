package dns

import (
	"net/netip"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// TestReload: Update applies a new config in place (names, policies,
// listeners); a config that does not compile is refused and the old one
// keeps serving.
func TestReload(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, nameConfig("policy: all")), src, nil)
	ts.waitAnswer(t, join(a1, a2, a3))
	serial := ts.query(t, "example.com.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial

	cfg := parseConfig(t, nameConfig("policy: failover"))
	cfg.DNS.Listen = []netip.AddrPort{netip.MustParseAddrPort(ts.addr)} // same socket
	if err := ts.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if got := sortedAddrs(ts.query(t, "www.example.com.", mdns.TypeA)); got != a1 {
		t.Errorf("after reload to failover: %s", got)
	}
	if s := ts.query(t, "example.com.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial; !serialGreater(s, serial) {
		t.Errorf("serial %d after a reload that changed answers, was %d", s, serial)
	}

	// A bad config (a zone without NS records) is refused.
	bad := parseConfig(t, strings.Replace(nameConfig("policy: all"), `records: ["@ NS ns1", "ns1 A 198.51.100.3"]`, `records: ["ns1 A 198.51.100.3"]`, 1))
	bad.DNS.Listen = cfg.DNS.Listen
	if err := ts.Update(bad); err == nil || !strings.Contains(err.Error(), "NS") {
		t.Errorf("bad config: %v", err)
	}
	if got := sortedAddrs(ts.query(t, "www.example.com.", mdns.TypeA)); got != a1 {
		t.Errorf("after a refused reload: %s", got)
	}

	// Moving to another port: the old one closes, the new one answers.
	moved := parseConfig(t, nameConfig("policy: failover"))
	moved.DNS.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	if err := ts.Update(moved); err != nil {
		t.Fatal(err)
	}
	addrs := ts.Addrs()
	if len(addrs) != 1 || addrs[0].String() == ts.addr {
		t.Fatalf("listening on %v after the move from %s", addrs, ts.addr)
	}
	if r := queryAt(t, "udp", addrs[0].String(), "www.example.com.", mdns.TypeA); len(r.Answer) != 1 {
		t.Errorf("new port: %v", r)
	}
	c := &mdns.Client{Timeout: 200e6}
	if _, _, err := c.Exchange(new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA), ts.addr); err == nil {
		t.Error("old port still answers")
	}
}
