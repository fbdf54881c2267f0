package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/pd"
	"github.com/multihome/multihome/ra"
)

// TestIPv6Status builds the API view from a real Advertiser's status (not
// running: nothing touches the kernel, no link is usable yet) and from a
// hand-made one with every state.
func TestIPv6Status(t *testing.T) {
	file, err := config.Parse("t.yaml", []byte(`
links:
  - {name: isp1, interface: wan1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway6: "2001:db8:2::1"}
  - {name: isp3, interface: wan3, gateway6: "2001:db8:3::1"}
ipv6:
  lan: lan0
  ra: {preferred_lifetime: 30m, valid_lifetime: 1h}
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp3, dhcpv6_pd: {}}
  firewall_sets:
    - {table: filter, set: lan6}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &Daemon{log: log, pd: &pdSub{learned: map[string]pd.Lease{
		"isp2": {Link: "isp2", Prefix: netip.MustParsePrefix("2001:db8:2:200::/56"), Preferred: now.Add(20 * time.Minute), Valid: now.Add(40 * time.Minute),
			T1: now.Add(10 * time.Minute), T2: now.Add(16 * time.Minute)},
	}}}
	a, err := ra.New(d.withLearned(file), nil, log, ra.Options{})
	if err != nil {
		t.Fatal(err)
	}
	links := []monitor.Status{{Link: "isp1", State: monitor.Down}, {Link: "isp2", State: monitor.Up, Admin: monitor.AdminDrain}}
	st := ipv6Status(now, a.Status(), links, nil)
	if st.Mode != "sadr" || st.LAN != "lan0" || len(st.Prefixes) != 3 {
		t.Fatalf("status %+v", st)
	}
	p1, p2, p3 := st.Prefixes[0], st.Prefixes[1], st.Prefixes[2]
	if p1.Link != "isp1" || p1.Prefix.String() != "2001:db8:1:100::/64" || p1.Source != api.IPv6Static || p1.State != api.IPv6Deprecated ||
		p1.Reason != "link down" || p1.PreferredLifetime != 0 || p1.ValidLifetime != 3600 || p1.Lease != nil {
		t.Errorf("isp1 %+v", p1)
	}
	// The learned prefix: its lifetimes are capped by the delegation's.
	if p2.Link != "isp2" || p2.Prefix.String() != "2001:db8:2:201::/64" || p2.Source != api.IPv6DHCPv6PD || p2.State != api.IPv6Deprecated ||
		p2.Reason != "link drained" || p2.PreferredLifetime != 0 || p2.ValidLifetime < 39*60 || p2.ValidLifetime > 40*60 {
		t.Errorf("isp2 %+v", p2)
	}
	if p3.Link != "isp3" || p3.Prefix.IsValid() || p3.Source != api.IPv6DHCPv6PD || p3.State != api.IPv6Pending || p3.Reason != "no delegation yet" {
		t.Errorf("isp3 %+v", p3)
	}
	if len(st.FirewallSets) != 1 {
		t.Fatalf("firewall sets %+v", st.FirewallSets)
	}
	if fs := st.FirewallSets[0]; fs.Family != "inet" || fs.Table != "filter" || fs.Set != "lan6" || len(fs.Prefixes) != 2 ||
		fs.Prefixes[0].String() != "2001:db8:1:100::/64" || fs.Prefixes[1].String() != "2001:db8:2:201::/64" || fs.Error != "" || !fs.Checked.IsZero() {
		t.Errorf("firewall set %+v", fs)
	}

	// Every state, as the running advertiser reports them.
	v := d.withLearned(file).IPv6
	old := netip.MustParsePrefix("2001:db8:1:200::/64")
	hand := ra.Status{IPv6: v, Prefixes: []ra.PrefixStatus{
		{PrefixState: ra.PrefixState{Link: "isp1", Prefix: v.Prefixes[0].Prefix, Usable: true}, Preferred: 30 * time.Minute, Valid: time.Hour},
		{PrefixState: ra.PrefixState{Link: "isp2", Prefix: v.Prefixes[1].Prefix, Usable: true, Capped: true}, Preferred: 20 * time.Minute, Valid: 40 * time.Minute},
		{PrefixState: ra.PrefixState{Link: "isp1", Prefix: old, Retired: true}},
	}, Sets: []ra.SetStatus{{FirewallSet: ra.FirewallSet{Family: "inet", Table: "filter", Name: "lan6"}, Err: "firewall set inet filter lan6 does not exist", Checked: now, Updates: 2}}}
	st = ipv6Status(now, hand, links, nil)
	want := []struct{ link, prefix, source, state, reason string }{
		{"isp1", "2001:db8:1:100::/64", "static", "preferred", ""},
		{"isp2", "2001:db8:2:201::/64", "dhcpv6-pd", "preferred", ""},
		{"isp1", old.String(), "static", "retired", "removed by a renumbering"},
		{"isp3", "invalid Prefix", "dhcpv6-pd", "pending", "no delegation yet"},
	}
	if len(st.Prefixes) != len(want) {
		t.Fatalf("%d prefixes, want %d: %+v", len(st.Prefixes), len(want), st.Prefixes)
	}
	for i, w := range want {
		p := st.Prefixes[i]
		if p.Link != w.link || p.Prefix.String() != w.prefix || p.Source != w.source || p.State != w.state || p.Reason != w.reason {
			t.Errorf("prefix %d: %+v, want %+v", i, p, w)
		}
	}
	if st.Prefixes[1].PreferredLifetime != 1200 || st.Prefixes[1].ValidLifetime != 2400 || st.Prefixes[2].ValidLifetime != 0 {
		t.Errorf("lifetimes %+v", st.Prefixes)
	}
	if fs := st.FirewallSets[0]; fs.Error == "" || fs.Updates != 2 || !fs.Checked.Equal(now) {
		t.Errorf("firewall set %+v", fs)
	}
}
