package dns

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// host6Config is a zone whose name lanhost is a LAN server (::80) in each
// provider's LAN prefix, plus an IPv4 address on isp1. prefixes is the
// ipv6.prefixes list in YAML flow syntax.
func host6Config(prefixes string) string {
	return `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1", priority: 1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1", priority: 2}
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
        - name: lanhost
          ttl: 60s
          min_ttl: 5s
          records:
            - {link: isp1, a: 198.51.100.2, host6: "::80"}
            - {link: isp2, host6: "::80"}
ipv6:
  lan: lan0
  prefixes: ` + prefixes + `
`
}

const (
	h1   = "2001:db8:1:100::80"
	h1b  = "2001:db8:1:200::80"
	h2   = "2001:db8:2:100::80"
	p1   = `{link: isp1, prefix: "2001:db8:1:100::/64"}`
	p1b  = `{link: isp1, prefix: "2001:db8:1:200::/64"}`
	p2   = `{link: isp2, prefix: "2001:db8:2:100::/64"}`
	host = "lanhost.example.com."
)

func prefixList(ps ...string) string { return "[" + strings.Join(ps, ", ") + "]" }

// waitAAAA polls lanhost AAAA until its sorted addresses are want and
// returns the answer.
func (ts *testServer) waitAAAA(t *testing.T, want string) *mdns.Msg {
	t.Helper()
	var r *mdns.Msg
	eventually(t, 2*time.Second, "lanhost AAAA = "+want, func() bool {
		r = ts.query(t, host, mdns.TypeAAAA)
		return r.Rcode == mdns.RcodeSuccess && sortedAddrs(r) == want
	})
	return r
}

// update reloads ts with cfg, on the socket it listens on.
func (ts *testServer) update(t *testing.T, cfg *config.Config) {
	t.Helper()
	cfg.DNS.Listen = []netip.AddrPort{netip.MustParseAddrPort(ts.addr)}
	if err := ts.Update(cfg); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// TestHost6Renumbering: host6 records answer the host's address in every
// LAN prefix of their link; an Update with a renumbered prefix changes
// the answers at once, bumps the serial, sends NOTIFY and lowers the TTL
// like a link change; a down link's addresses leave the answers; a
// prefix not known yet gives no address.
func TestHost6Renumbering(t *testing.T) {
	naddr, notified := notifyListener(t)
	withNotify := func(cfg *config.Config) *config.Config {
		cfg.DNS.Zones[0].Transfer.Notify = []netip.AddrPort{naddr}
		return cfg
	}
	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, withNotify(parseConfig(t, host6Config(prefixList(p1, p2)))), src, nil)
	r := ts.waitAAAA(t, join(h1, h2))
	if ttl := r.Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("TTL %d with stable links and prefixes, want the name's 60", ttl)
	}
	if got := sortedAddrs(ts.query(t, host, mdns.TypeA)); got != a1 {
		t.Errorf("A %s, want %s", got, a1)
	}
	serial := func() uint32 { return ts.query(t, "example.com.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial }
	s0 := serial()

	// The same config again changes nothing: no bump, TTL kept.
	ts.update(t, withNotify(parseConfig(t, host6Config(prefixList(p1, p2)))))
	if s := serial(); s != s0 {
		t.Errorf("an unchanged config bumped the serial %d → %d", s0, s)
	}
	if ttl := ts.waitAAAA(t, join(h1, h2)).Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("TTL %d after a reload that changed nothing, want 60", ttl)
	}

	// Renumbering isp1: the new address replaces the old one at once.
	for len(notified) > 0 {
		<-notified
	}
	start := time.Now()
	ts.update(t, withNotify(parseConfig(t, host6Config(prefixList(p1b, p2)))))
	r = ts.query(t, host, mdns.TypeAAAA)
	t.Logf("renumbered answer %v after Update returned (%v after it was called)", addrs(r), time.Since(start))
	if got := sortedAddrs(r); got != join(h1b, h2) {
		t.Fatalf("AAAA right after the renumbering Update: %s, want %s", got, join(h1b, h2))
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != 5 {
		t.Errorf("TTL %d right after the renumbering, want min_ttl 5", ttl)
	}
	s1 := serial()
	if !serialGreater(s1, s0) {
		t.Errorf("serial %d after the renumbering, was %d", s1, s0)
	}
	deadline := time.After(3 * time.Second)
	for got := false; !got; {
		select {
		case m := <-notified:
			got = len(m.Answer) == 1 && m.Answer[0].(*mdns.SOA).Serial == s1
		case <-deadline:
			t.Fatalf("no NOTIFY with the renumbered serial %d", s1)
		}
	}
	// The TTL grows back as the prefixes stay put.
	ts.clk.advance(20 * time.Second)
	if ttl := ts.query(t, host, mdns.TypeAAAA).Answer[0].Header().Ttl; ttl < 19 || ttl > 21 {
		t.Errorf("TTL %d 20 s after the renumbering, want ~20", ttl)
	}
	ts.clk.advance(time.Minute)
	if ttl := ts.query(t, host, mdns.TypeAAAA).Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("TTL %d long after the renumbering, want 60", ttl)
	}

	// Health steering: a down link's addresses leave the answers.
	src.state("isp1", monitor.Down)
	ts.waitAAAA(t, h2)
	if r := ts.query(t, host, mdns.TypeA); len(r.Answer) != 0 || r.Rcode != mdns.RcodeSuccess {
		t.Errorf("A with its only link down: %v", r)
	}
	src.state("isp1", monitor.Up)
	ts.waitAAAA(t, join(h1b, h2))

	// Two prefixes on one link: one address in each.
	ts.update(t, withNotify(parseConfig(t, host6Config(prefixList(p1, p2, p1b)))))
	ts.waitAAAA(t, join(h1, h1b, h2))

	// A prefix not known yet (a learned one, before it is delegated)
	// gives no address; isp1 still answers.
	cfg := withNotify(parseConfig(t, host6Config(prefixList(p1b, p2))))
	cfg.IPv6.Prefixes[1].Prefix = netip.Prefix{}
	ts.update(t, cfg)
	ts.waitAAAA(t, h1b)
	// Neither known: NODATA for AAAA, A unaffected.
	cfg = withNotify(parseConfig(t, host6Config(prefixList(p1b, p2))))
	cfg.IPv6.Prefixes[0].Prefix, cfg.IPv6.Prefixes[1].Prefix = netip.Prefix{}, netip.Prefix{}
	ts.update(t, cfg)
	ts.waitAAAA(t, "")
	if got := sortedAddrs(ts.query(t, host, mdns.TypeA)); got != a1 {
		t.Errorf("A %s while no prefix is known, want %s", got, a1)
	}
}

// TestHost6Compile: the addresses compiled from host6 records, for
// prefixes of other lengths too.
func TestHost6Compile(t *testing.T) {
	cfg := parseConfig(t, host6Config(prefixList(p1, p2)))
	cfg.IPv6.Prefixes = append(cfg.IPv6.Prefixes,
		config.IPv6Prefix{Link: "isp2", Prefix: netip.MustParsePrefix("2001:db8:3:ff::/48")},  // a shorter one: its network bits
		config.IPv6Prefix{Link: "isp2", Prefix: netip.MustParsePrefix("2001:db8:2:100::/64")}, // duplicate
		config.IPv6Prefix{Link: "isp2"}) // not known yet
	zones, err := compile(cfg, (&counters{}).name)
	if err != nil {
		t.Fatal(err)
	}
	n := zones[0].names[0]
	var got []string
	for _, r := range n.recs[famAAAA] {
		got = append(got, r.link+"="+r.addr.String())
	}
	want := []string{"isp1=" + h1, "isp2=" + h2, "isp2=2001:db8:3::80"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("AAAA records %v, want %v", got, want)
	}
	if !n.managed[famAAAA] || !n.managed[famA] {
		t.Errorf("managed %v", n.managed)
	}
}

// TestPushHost6Knot: in push mode a renumbered prefix replaces the old
// AAAA at a real Knot primary in one update (delete the old address, add
// the new one); a prefix no longer known removes its address, and with
// no prefix known the AAAA RRset is deleted rather than left stale.
func TestPushHost6Knot(t *testing.T) {
	ns := testNS(t, "knot6")
	k := startKnot(t, ns)
	pushCfg := func(prefixes string) *config.Config {
		y := strings.Replace(host6Config(prefixes), `  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
`, `  keys: [{name: mhkey, algorithm: hmac-sha256, secret: "`+testSecret+`"}]
`, 1)
		y = strings.Replace(y, `      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
`, `      mode: push
      push: {server: "127.0.0.1:5300", key: mhkey, retry_min: 50ms, retry_max: 400ms, verify: 0s, timeout: 500ms}
`, 1)
		y = strings.Replace(y, "name: lanhost", "name: www", 1)
		return parseConfig(t, y)
	}
	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, pushCfg(prefixList(p1, p2)), src, inNS(ns))
	k.wait(t, mdns.TypeAAAA, join(h1, h2))
	k.wait(t, mdns.TypeA, a1)

	st0 := ts.Stats()
	start := time.Now()
	if err := ts.Update(pushCfg(prefixList(p1b, p2))); err != nil {
		t.Fatal(err)
	}
	k.wait(t, mdns.TypeAAAA, join(h1b, h2))
	t.Logf("renumbered AAAA at knot %v after Update", time.Since(start))
	eventually(t, 2*time.Second, "update counted", func() bool { return ts.Stats().UpdatesPushed > st0.UpdatesPushed })
	st1 := ts.Stats()
	if n, add, rm := st1.UpdatesPushed-st0.UpdatesPushed, st1.RecordsAdded-st0.RecordsAdded, st1.RecordsRemoved-st0.RecordsRemoved; n != 1 || add != 1 || rm != 1 {
		t.Errorf("renumbering pushed %d updates adding %d and removing %d records, want 1, 1, 1", n, add, rm)
	}
	k.wait(t, mdns.TypeA, a1) // untouched

	// isp1 down: its address leaves the primary too.
	src.state("isp1", monitor.Down)
	k.wait(t, mdns.TypeAAAA, h2)
	src.state("isp1", monitor.Up)
	k.wait(t, mdns.TypeAAAA, join(h1b, h2))

	// isp2's prefix lost (a learned prefix not known any more): its
	// address goes; then with no prefix known the AAAA RRset goes.
	cfg := pushCfg(prefixList(p1b, p2))
	cfg.IPv6.Prefixes[1].Prefix = netip.Prefix{}
	if err := ts.Update(cfg); err != nil {
		t.Fatal(err)
	}
	k.wait(t, mdns.TypeAAAA, h1b)
	cfg = pushCfg(prefixList(p1b, p2))
	cfg.IPv6.Prefixes[0].Prefix, cfg.IPv6.Prefixes[1].Prefix = netip.Prefix{}, netip.Prefix{}
	if err := ts.Update(cfg); err != nil {
		t.Fatal(err)
	}
	k.wait(t, mdns.TypeAAAA, "")
	k.wait(t, mdns.TypeA, a1)
	if r := k.must(t, "www.example.com.", mdns.TypeTXT); len(r.Answer) != 1 {
		t.Errorf("unmanaged TXT touched: %v", r)
	}
}

// TestDocsHost6Example loads the host6 example of docs/dns.md (kept
// identical to testdata/host6.yaml) and checks its answers: both
// providers' addresses, isp1's gone while it is down, and the renumbered
// one after an Update.
func TestDocsHost6Example(t *testing.T) {
	s, src := docsExample(t, "testdata/host6.yaml")
	ask := func() string {
		s.mu.Lock()
		for _, st := range src.Snapshot() {
			s.applyStatus(st, s.now(), true)
		}
		s.rebuild()
		s.mu.Unlock()
		v := s.view.Load()
		return sortedAddrs(s.respond(v, new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeAAAA), false, netip.MustParseAddr("192.0.2.1")))
	}
	if got := ask(); got != join(h1, h2) {
		t.Errorf("www AAAA: %s, want %s", got, join(h1, h2))
	}
	src.state("isp1", monitor.Down)
	if got := ask(); got != h2 {
		t.Errorf("www AAAA with isp1 down: %s, want %s", got, h2)
	}
	src.state("isp1", monitor.Up)
	example, err := os.ReadFile("testdata/host6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := strings.Replace(string(example), "2001:db8:1:100::/64", "2001:db8:1:200::/64", 1)
	renum, err := config.Parse("host6.yaml", []byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(renum); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != join(h1b, h2) {
		t.Errorf("www AAAA after renumbering isp1: %s, want %s", got, join(h1b, h2))
	}
}

// TestNameHost6: a name-level host6 puts the host on every link with LAN
// prefixes (isp3 has none), with the record's weight where the name has
// one; a record giving aaaa for its link overrides it there.
func TestNameHost6(t *testing.T) {
	y := `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1", priority: 1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1", priority: 2}
  - {name: isp3, interface: wan3, gateway4: 198.51.100.33, priority: 3}
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
        - name: nas
          host6: "::10"
        - name: lanhost
          host6: "::80"
          records:
            - {link: isp1, a: 198.51.100.2, weight: 7}
            - {link: isp2, aaaa: "2001:db8:2::2"}
            - {link: isp3, a: 198.51.100.34}
ipv6:
  lan: lan0
  prefixes: [{link: isp1, prefix: "2001:db8:1:100::/64"}, {link: isp2, prefix: "2001:db8:2:100::/64"}]
`
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, y), src, nil)
	if got := sortedAddrs(ts.query(t, "nas.example.com.", mdns.TypeAAAA)); got != join("2001:db8:1:100::10", "2001:db8:2:100::10") {
		t.Errorf("nas AAAA %s", got)
	}
	if r := ts.query(t, "nas.example.com.", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("nas A: %v", r)
	}
	if got := sortedAddrs(ts.query(t, host, mdns.TypeAAAA)); got != join(h1, "2001:db8:2::2") {
		t.Errorf("lanhost AAAA %s", got)
	}
	ts.mu.Lock()
	zones := ts.zones
	ts.mu.Unlock()
	for _, n := range zones[0].names {
		for _, r := range n.recs[famAAAA] {
			if r.link == "isp1" && n.name == host && r.weight != 7 {
				t.Errorf("lanhost isp1 AAAA weight %v, want the record's 7", r.weight)
			}
		}
	}
	src.state("isp2", monitor.Down)
	eventually(t, 2*time.Second, "nas without isp2", func() bool {
		return sortedAddrs(ts.query(t, "nas.example.com.", mdns.TypeAAAA)) == "2001:db8:1:100::10"
	})
}

// TestHost6LearnedPrefix: a host6 record on a link whose LAN prefix is
// learned by DHCPv6-PD (ipv6.prefixes[].dhcpv6_pd) passes the config
// check with the prefix unknown and has no AAAA on that link; the
// daemon's learned-prefix path (a config copy with the prefix filled in,
// given to Update) adds it, and a lost delegation removes it.
func TestHost6LearnedPrefix(t *testing.T) {
	y := host6Config(prefixList(p1, `{link: isp2, dhcpv6_pd: {length: 56}}`))
	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, parseConfig(t, y), src, nil)
	ts.waitAAAA(t, h1)

	learned := parseConfig(t, y)
	learned.IPv6.Prefixes[1].Prefix = netip.MustParsePrefix("2001:db8:2:100::/64")
	ts.update(t, learned)
	r := ts.waitAAAA(t, join(h1, h2))
	if ttl := r.Answer[0].Header().Ttl; ttl != 5 {
		t.Errorf("TTL %d right after the learned prefix, want min_ttl 5", ttl)
	}
	ts.update(t, parseConfig(t, y)) // delegation lost
	ts.waitAAAA(t, h1)
}

// FuzzHost6Config: whatever host6 and prefixes a config gives, a config
// the checker accepts compiles, and each host6 address is inside a LAN
// prefix of its link with the identifier's host bits.
func FuzzHost6Config(f *testing.F) {
	f.Add("::80", "2001:db8:1:100::/64", "2001:db8:2:100::/64", "::1")
	f.Add("::ffff:1.2.3.4", "2001:db8:1::/48", "2001:db8:2:100::/64", "0:0:0:0:ffff::")
	f.Add("2001:db8::80", "2001:db8:1:100::/64", "2001:db8:1:100::/64", "::")
	f.Add("192.0.2.1", "", "fe80::/64", "::80%eth0")
	f.Fuzz(func(t *testing.T, h1, pre1, pre2, nameH string) {
		q := func(s string) string { return fmt.Sprintf("%q", s) }
		y := `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
dns:
  listen: ["127.0.0.1:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1"]
      names:
        - {name: a, records: [{link: isp1, host6: ` + q(h1) + `}, {link: isp2, a: 198.51.100.18}]}
        - {name: b, host6: ` + q(nameH) + `}
ipv6:
  lan: lan0
  prefixes: [{link: isp1, prefix: ` + q(pre1) + `}, {link: isp2, prefix: ` + q(pre2) + `}]
`
		cfg, err := config.Parse("fuzz.yaml", []byte(y))
		if err != nil {
			return
		}
		zones, err := compile(cfg, (&counters{}).name)
		if err != nil {
			t.Fatalf("accepted config does not compile: %v", err)
		}
		for _, n := range zones[0].names {
			for _, r := range n.recs[famAAAA] {
				ok := false
				for _, p := range cfg.IPv6.Prefixes {
					if p.Link == r.link && p.Prefix.Contains(r.addr) {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("%s AAAA %s on %s is in none of the link's prefixes %v", n.name, r.addr, r.link, cfg.IPv6.Prefixes)
				}
				iid := r.addr.As16()
				want := cfg.DNS.Zones[0].Names[0].Records[0].Host6
				if n.name == "b.example.com." {
					want = cfg.DNS.Zones[0].Names[1].Host6
				}
				if w := want.As16(); [8]byte(iid[8:]) != [8]byte(w[8:]) {
					t.Fatalf("%s AAAA %s: host bits are not those of %s", n.name, r.addr, want)
				}
			}
		}
	})
}
