package ra

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	"github.com/multihome/multihome/nft"
)

// setsConfig has three links, two with prefixes, and two firewall sets:
// lan6 (default links: isp1 and isp2) and isp2only.
const setsConfig = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, gateway6: "2001:db8:2::1"}
  - {name: lte, interface: wan3, gateway4: 198.51.100.33}
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:101::/64"}
  ra: {interval: 1s}
  firewall_sets:
    - {table: filter, set: lan6}
    - {family: ip6, table: edge, set: isp2only, links: [isp2]}
`

func TestFirewallSetsScript(t *testing.T) {
	cfg := parse(t, setsConfig)
	now := time.Now()
	ret := map[netip.Prefix]retired{
		netip.MustParsePrefix("2001:db8:1:80::/64"): {link: "isp1", until: now.Add(time.Second)},
		netip.MustParsePrefix("2001:db8:1:81::/64"): {link: "isp1", until: now.Add(-time.Second)}, // over
	}
	sets := FirewallSets(cfg.IPv6, ret, now)
	got := SetScript(sets)
	const want = `flush set inet filter lan6
add element inet filter lan6 { 2001:db8:1:80::/64, 2001:db8:1:100::/64, 2001:db8:2:100::/64, 2001:db8:2:101::/64 }
flush set ip6 edge isp2only
add element ip6 edge isp2only { 2001:db8:2:100::/64, 2001:db8:2:101::/64 }
`
	if got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
	// A set whose links have no known prefix (an unlearned delegation)
	// is emptied, not left with stale elements.
	empty := []FirewallSet{{Family: "inet", Table: "filter", Name: "lan6"}}
	if got := SetScript(empty); got != "flush set inet filter lan6\n" {
		t.Errorf("empty set script %q", got)
	}
	// A DHCPv6-PD entry: absent until learned, then in.
	pd := parse(t, strings.Replace(setsConfig, `{link: isp1, prefix: "2001:db8:1:100::/64"}`, `{link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}`, 1))
	if got := SetScript(FirewallSets(pd.IPv6, nil, now)[:1]); got != "flush set inet filter lan6\nadd element inet filter lan6 { 2001:db8:2:100::/64, 2001:db8:2:101::/64 }\n" {
		t.Errorf("script before the delegation:\n%s", got)
	}
	pd.IPv6.Prefixes[0].Prefix = netip.MustParsePrefix("2001:db8:1:8001::/64")
	if got := SetScript(FirewallSets(pd.IPv6, nil, now)[:1]); got != "flush set inet filter lan6\nadd element inet filter lan6 { 2001:db8:1:8001::/64, 2001:db8:2:100::/64, 2001:db8:2:101::/64 }\n" {
		t.Errorf("script with the learned prefix:\n%s", got)
	}
	if h := createHint(sets[0]); h != "nft add set inet filter lan6 '{ type ipv6_addr; flags interval; }'" {
		t.Errorf("hint %q", h)
	}
}

func TestParseSetListing(t *testing.T) {
	const head = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, `
	for _, tc := range []struct {
		name, json string
		want       []string // covered spans "lo-hi"
		err        string
	}{
		{"prefixes", head + `{"set": {"family": "inet", "name": "lan6", "table": "filter", "type": "ipv6_addr", "handle": 1, "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8:2:100::", "len": 64}}, {"prefix": {"addr": "2001:db8:1:100::", "len": 64}}]}}]}`,
			[]string{"2001:db8:1:100::-2001:db8:1:100:ffff:ffff:ffff:ffff", "2001:db8:2:100::-2001:db8:2:100:ffff:ffff:ffff:ffff"}, ""},
		{"adjacent prefixes merge", head + `{"set": {"type": "ipv6_addr", "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8:2:101::", "len": 64}}, {"prefix": {"addr": "2001:db8:2:100::", "len": 64}}]}}]}`,
			[]string{"2001:db8:2:100::-2001:db8:2:101:ffff:ffff:ffff:ffff"}, ""},
		{"address range and options", head + `{"set": {"type": "ipv6_addr", "flags": ["interval", "timeout"], "elem": ["2001:db8:5::1", {"range": ["2001:db8:6::", "2001:db8:6::5"]}, {"elem": {"val": {"prefix": {"addr": "2001:db8:7::", "len": 127}}, "timeout": 10}}]}}]}`,
			[]string{"2001:db8:5::1-2001:db8:5::1", "2001:db8:6::-2001:db8:6::5", "2001:db8:7::-2001:db8:7::1"}, ""},
		{"empty", head + `{"set": {"type": "ipv6_addr", "handle": 4, "flags": ["interval"]}}]}`, nil, ""},
		{"ipv4", head + `{"set": {"type": "ipv4_addr", "handle": 2}}]}`, nil, `has the wrong type: type "ipv4_addr", flags none; want type ipv6_addr, flags interval`},
		{"no interval flag", head + `{"set": {"type": "ipv6_addr", "handle": 3}}]}`, nil, "has the wrong type"},
		{"concatenation", head + `{"set": {"type": ["ipv6_addr", "inet_service"], "flags": ["interval"]}}]}`, nil, "has the wrong type"},
		{"bad element", head + `{"set": {"type": "ipv6_addr", "flags": ["interval"], "elem": [{"set": 1}]}}]}`, nil, "not an address, prefix or range"},
		{"no set", head + `{"table": {}}]}`, nil, "nft listed no set"},
		{"not json", `Error: x`, nil, "reading nft's listing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSetListing([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, sp := range got {
				s = append(s, sp.lo.String()+"-"+sp.hi.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Errorf("got %q\nwant %q", s, tc.want)
			}
		})
	}
}

func FuzzParseSetListing(f *testing.F) {
	f.Add([]byte(`{"nftables": [{"set": {"type": "ipv6_addr", "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8:2:100::", "len": 64}}, "2001:db8::1", {"range": ["2001:db8:6::", "2001:db8:6::5"]}]}}]}`))
	f.Add([]byte(`{"nftables": [{"set": {"type": "ipv6_addr", "flags": ["interval"], "elem": [{"elem": {"val": {"prefix": {"addr": "::", "len": 0}}}}]}}]}`))
	f.Add([]byte(`{"nftables": [{"set": {"type": "ipv4_addr"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := parseSetListing(b)
		if err != nil {
			return
		}
		for i, s := range spans {
			if s.hi.Less(s.lo) {
				t.Fatalf("span %d: %s > %s", i, s.lo, s.hi)
			}
			if i > 0 && spans[i-1].hi.Next().IsValid() && !spans[i-1].hi.Next().Less(s.lo) {
				t.Fatalf("spans %d and %d overlap or touch: %v", i-1, i, spans)
			}
		}
	})
}

// countingNFT runs nft in namespace ns and counts the writes (nft -f).
func countingNFT(ns string, writes *atomic.Int32) nft.Runner {
	run := nft.Command("ip", "netns", "exec", ns, "nft")
	return func(ctx context.Context, stdin string, args ...string) ([]byte, error) {
		if len(args) > 0 && args[0] == "-f" {
			writes.Add(1)
		}
		return run(ctx, stdin, args...)
	}
}

func setElems(t *testing.T, ns, family, table, set string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "set", family, table, set).Output()
	if err != nil {
		t.Fatalf("list set %s %s %s: %v", family, table, set, err)
	}
	var l setListing
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, o := range l.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			sp, err := parseElem(e)
			if err != nil {
				t.Fatal(err)
			}
			s = append(s, spanString(sp))
		}
	}
	slices.Sort(s)
	return s
}

// spanString writes sp as a prefix when it is one.
func spanString(sp span) string {
	for bits := 0; bits <= 128; bits++ {
		if p, _ := sp.lo.Prefix(bits); p.Addr() == sp.lo && prefixSpan(p) == sp {
			return p.String()
		}
	}
	return sp.lo.String() + "-" + sp.hi.String()
}

// TestFirewallSetsKernel fills an operator's sets in a throwaway
// namespace through the Advertiser: exact contents, no write when already
// right, renumbering (retired prefix kept until ra.retire ends), a missing
// set reported and counted without stopping the others, and the elements
// left in place on shutdown.
func TestFirewallSetsKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ns := netns.Unique("mhsets", "")
	if err := netns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	sh := func(stdin string, argv ...string) {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
	}
	sh("", "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
	sh("", "ip", "link", "set", "lan0", "up")
	// The operator's firewall: a set with a foreign element, rules using it.
	sh(`table inet filter {
	set lan6 {
		type ipv6_addr
		flags interval
		elements = { 2001:db8:9::/48 }
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip6 saddr != @lan6 iifname "lan0" drop
	}
}
`, "nft", "-f", "-")

	h, err := netns.Handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var writes atomic.Int32
	cfg := parse(t, strings.Replace(setsConfig, "ra: {interval: 1s}", "ra: {interval: 1s, retire: 300ms}", 1))
	src := &fakeSource{}
	for _, ln := range cfg.Links {
		src.st = append(src.st, monitor.Status{Link: ln.Name, Interface: ln.Interface, State: monitor.Up, Health: monitor.Up})
	}
	a, err := New(cfg, src, log, Options{Handle: h, NFT: countingNFT(ns, &writes)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		a.mu.Lock()
		a.clear()
		a.mu.Unlock()
	}()
	// Update syncs: ip6 edge isp2only does not exist (the operator
	// forgot it); inet filter lan6 must still be filled.
	if err := a.Update(cfg); err != nil {
		t.Fatalf("Update: %v (firewall set problems must not fail it)", err)
	}
	want := []string{"2001:db8:1:100::/64", "2001:db8:2:100::/64", "2001:db8:2:101::/64"}
	if got := setElems(t, ns, "inet", "filter", "lan6"); !slices.Equal(got, want) {
		t.Errorf("lan6 = %v, want %v (foreign element replaced)", got, want)
	}
	if n := writes.Load(); n != 1 {
		t.Errorf("%d nft writes, want 1 transaction", n)
	}
	if !strings.Contains(logs.String(), "firewall set ip6 edge isp2only does not exist: create it with `nft add set ip6 edge isp2only '{ type ipv6_addr; flags interval; }'`") {
		t.Errorf("no clear error about the missing set in the log:\n%s", logs.String())
	}
	if err := testutil.CollectAndCompare(a.Collector(), strings.NewReader(`
# HELP multihome_ipv6_firewall_set_errors_total Failed attempts to read or fill an operator's firewall set (ipv6.firewall_sets): missing, wrong type, or nft failed.
# TYPE multihome_ipv6_firewall_set_errors_total counter
multihome_ipv6_firewall_set_errors_total{set="inet filter lan6"} 0
multihome_ipv6_firewall_set_errors_total{set="ip6 edge isp2only"} 1
# HELP multihome_ipv6_firewall_set_updates_total Times an operator's firewall set was rewritten because its elements differed from the LAN prefixes.
# TYPE multihome_ipv6_firewall_set_updates_total counter
multihome_ipv6_firewall_set_updates_total{set="inet filter lan6"} 1
multihome_ipv6_firewall_set_updates_total{set="ip6 edge isp2only"} 0
# HELP multihome_ipv6_firewall_set_prefixes LAN prefixes an operator's firewall set should hold now (retired ones included).
# TYPE multihome_ipv6_firewall_set_prefixes gauge
multihome_ipv6_firewall_set_prefixes{set="inet filter lan6"} 3
multihome_ipv6_firewall_set_prefixes{set="ip6 edge isp2only"} 2
`), "multihome_ipv6_firewall_set_errors_total", "multihome_ipv6_firewall_set_updates_total", "multihome_ipv6_firewall_set_prefixes"); err != nil {
		t.Error(err)
	}
	if probs, err := testutil.GatherAndLint(registry(t, a)); err != nil || len(probs) > 0 {
		t.Errorf("promlint: %v %v", probs, err)
	}

	// The operator creates the set; the next tick (after the retry
	// back-off) fills it. Nothing else is rewritten.
	sh("", "nft", "add", "table", "ip6", "edge")
	sh("", "nft", "add", "set", "ip6", "edge", "isp2only", "{ type ipv6_addr; flags interval; }")
	tick := func() {
		a.mu.Lock()
		a.syncSets(false)
		a.mu.Unlock()
	}
	tick() // within the back-off: nothing read
	if n := writes.Load(); n != 1 {
		t.Errorf("%d nft writes right after a failure, want the retry to wait %s", n, setRetryBackoff)
	}
	a.mu.Lock()
	a.sets.lastCheck = a.sets.lastCheck.Add(-setRetryBackoff)
	a.mu.Unlock()
	tick()
	if got := setElems(t, ns, "ip6", "edge", "isp2only"); !slices.Equal(got, want[1:]) {
		t.Errorf("isp2only = %v, want %v", got, want[1:])
	}
	if n := writes.Load(); n != 2 {
		t.Errorf("%d nft writes, want 2", n)
	}
	if !strings.Contains(logs.String(), "firewall set usable again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}

	// Idempotent: a sync with the same config reads and writes nothing.
	if err := a.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if n := writes.Load(); n != 2 {
		t.Errorf("%d nft writes after a sync with nothing to change, want still 2", n)
	}

	// Renumbering isp1: the new prefix is in at once, the old one stays
	// until ra.retire ends (hosts still use its deprecated addresses for
	// existing connections), then leaves at the next tick.
	cfg2 := parse(t, strings.Replace(strings.Replace(setsConfig, "2001:db8:1:100::/64", "2001:db8:1:200::/64", 1),
		"ra: {interval: 1s}", "ra: {interval: 1s, retire: 300ms}", 1))
	if err := a.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	if got := setElems(t, ns, "inet", "filter", "lan6"); !slices.Equal(got, []string{"2001:db8:1:100::/64", "2001:db8:1:200::/64", "2001:db8:2:100::/64", "2001:db8:2:101::/64"}) {
		t.Errorf("lan6 right after renumbering = %v, want new and retired", got)
	}
	if got := setElems(t, ns, "ip6", "edge", "isp2only"); !slices.Equal(got, want[1:]) {
		t.Errorf("isp2only touched by isp1's renumbering: %v", got)
	}
	if n := writes.Load(); n != 3 {
		t.Errorf("%d nft writes, want 3 (one for lan6 only)", n)
	}
	time.Sleep(400 * time.Millisecond)
	tick()
	if got := setElems(t, ns, "inet", "filter", "lan6"); !slices.Equal(got, []string{"2001:db8:1:200::/64", "2001:db8:2:100::/64", "2001:db8:2:101::/64"}) {
		t.Errorf("lan6 after ra.retire = %v", got)
	}

	// The operator flushes their set (e.g. reloads the ruleset): the
	// periodic re-read puts the prefixes back.
	sh("", "nft", "flush", "set", "inet", "filter", "lan6")
	a.mu.Lock()
	a.sets.lastCheck = a.sets.lastCheck.Add(-setRecheck)
	a.mu.Unlock()
	tick()
	if got := setElems(t, ns, "inet", "filter", "lan6"); len(got) != 3 {
		t.Errorf("lan6 after the operator's flush and a recheck = %v", got)
	}

	// Wrong type: logged as such, counted, the other set still kept.
	sh("", "nft", "delete", "set", "ip6", "edge", "isp2only")
	sh("", "nft", "add", "set", "ip6", "edge", "isp2only", "{ type ipv4_addr; }")
	cfg3 := parse(t, strings.Replace(strings.Replace(setsConfig, "2001:db8:2:101::/64", "2001:db8:2:102::/64", 1),
		"ra: {interval: 1s}", "ra: {interval: 1s, retire: 300ms}", 1))
	if err := a.Update(cfg3); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "firewall set ip6 edge isp2only has the wrong type: type \\\"ipv4_addr\\\", flags none") {
		t.Errorf("wrong type not logged:\n%s", logs.String())
	}
	if got := setElems(t, ns, "inet", "filter", "lan6"); !slices.Contains(got, "2001:db8:2:102::/64") {
		t.Errorf("lan6 not updated next to a broken set: %v", got)
	}
	if v := collectOne(t, a, "multihome_ipv6_firewall_set_errors_total", "ip6 edge isp2only"); v != 2 {
		t.Errorf("errors for isp2only = %v, want 2", v)
	}

	// Shutdown leaves the elements: the firewall keeps working until the
	// next start rewrites them.
	before := setElems(t, ns, "inet", "filter", "lan6")
	a.mu.Lock()
	if err := a.clear(); err != nil {
		t.Logf("clear: %v", err)
	}
	a.mu.Unlock()
	if got := setElems(t, ns, "inet", "filter", "lan6"); len(got) < 3 || !slices.Equal(got, before) {
		t.Errorf("lan6 after shutdown = %v, want its elements kept: %v", got, before)
	}
}

// collectOne returns the value of metric name for set.
func collectOne(t *testing.T, a *Advertiser, name, set string) float64 {
	t.Helper()
	mfs, err := registry(t, a).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "set" && l.GetValue() == set {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{set=%q}", name, set)
	return 0
}
