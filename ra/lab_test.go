package ra

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	"github.com/multihome/multihome/nft"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }

// fakeSource is a monitor.Source driven by the test.
type fakeSource struct {
	bus monitor.Bus
	mu  sync.Mutex
	st  []monitor.Status
}

func (f *fakeSource) Subscribe() (<-chan monitor.Event, func()) { return f.bus.Subscribe() }

func (f *fakeSource) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]monitor.Status(nil), f.st...)
}

func (f *fakeSource) set(link string, s monitor.State) {
	f.mu.Lock()
	var ev monitor.Event
	for i := range f.st {
		if f.st[i].Link == link {
			from := f.st[i].State
			f.st[i].State, f.st[i].Health = s, s
			ev = monitor.Event{Time: time.Now(), Kind: monitor.StateChanged, Link: link, From: from, To: s, Status: f.st[i]}
		}
	}
	f.mu.Unlock()
	f.bus.Publish(ev)
}

func (f *fakeSource) admin(link string, ad monitor.Admin) {
	f.mu.Lock()
	var ev monitor.Event
	for i := range f.st {
		if f.st[i].Link == link {
			f.st[i].Admin = ad
			ev = monitor.Event{Time: time.Now(), Kind: monitor.AdminChanged, Link: link, From: f.st[i].State, To: f.st[i].State, Status: f.st[i]}
		}
	}
	f.mu.Unlock()
	f.bus.Publish(ev)
}

// hostPrefixes returns the host's global addresses by /64 prefix, with
// whether each is deprecated.
func hostPrefixes(t *testing.T, l *lab.Lab) map[string]bool {
	t.Helper()
	out, err := l.Run(context.Background(), "lan1", "ip", "-6", "-j", "addr", "show", "dev", "eth0", "scope", "global").Output()
	if err != nil {
		t.Fatal(err)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local      string `json:"local"`
			Deprecated bool   `json:"deprecated"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &ifs); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, i := range ifs {
		for _, a := range i.AddrInfo {
			f := strings.Split(a.Local, ":")
			if len(f) >= 4 {
				m[strings.Join(f[:4], ":")] = a.Deprecated
			}
		}
	}
	return m
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
	}
}

func gwShow(t *testing.T, l *lab.Lab, args ...string) string {
	t.Helper()
	out, err := l.Run(context.Background(), "gw", append([]string{"ip", "-6"}, args...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestAdvertiserInLab runs the advertiser in a lab's gateway namespace with
// a fake monitor: the host autoconfigures both prefixes, a down link's
// prefix is deprecated and restored, and on shutdown the gateway's rules
// and addresses are gone and the host drops the router.
func TestAdvertiserInLab(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	if err := netns.Do(l.NS("lan1"), func() error {
		for k, v := range map[string]string{"accept_ra": "2", "autoconf": "1"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/eth0/"+k, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg := parse(t, testConfig)
	src := &fakeSource{}
	for _, ln := range cfg.Links {
		src.st = append(src.st, monitor.Status{Link: ln.Name, Interface: ln.Interface, State: monitor.Up, Health: monitor.Up})
	}
	h, err := netns.Handle(l.NS("gw"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	a, err := New(cfg, src, log, Options{Handle: h, NFT: nft.CommandIn(l.NS("gw"), "nft"),
		Enter: func(fn func() error) error { return netns.Do(l.NS("gw"), fn) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	eventually(t, "SLAAC addresses in both prefixes", func() bool {
		m := hostPrefixes(t, l)
		d1, ok1 := m["2001:db8:1:100"]
		d2, ok2 := m["2001:db8:2:100"]
		return ok1 && ok2 && !d1 && !d2
	})
	rules := gwShow(t, l, "rule", "show")
	for _, want := range []string{
		"30900:	from 2001:db8:1:100::/64 lookup main suppress_prefixlength 0",
		"30901:	from 2001:db8:1:100::/64 lookup 31000",
		"30901:	from 2001:db8:2:100::/64 lookup 31001",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("missing rule %q in:\n%s", want, rules)
		}
	}
	if addrs := gwShow(t, l, "addr", "show", "dev", "lan0"); !strings.Contains(addrs, "2001:db8:1:100::1/64") || !strings.Contains(addrs, "2001:db8:2:100::1/64") {
		t.Errorf("gateway LAN addresses:\n%s", addrs)
	}

	at := time.Now()
	src.set("isp2", monitor.Down)
	eventually(t, "isp2 prefix deprecated", func() bool { return hostPrefixes(t, l)["2001:db8:2:100"] })
	if n, err := testutil.GatherAndCount(registry(t, a), "multihome_ipv6_prefix_preferred"); err != nil || n != 2 {
		t.Errorf("multihome_ipv6_prefix_preferred series: %d, %v", n, err)
	}
	if err := testutil.CollectAndCompare(a.Collector(), strings.NewReader(`
# HELP multihome_ipv6_prefix_preferred 1 while a prefix is advertised as preferred, 0 while deprecated (link down) or retired.
# TYPE multihome_ipv6_prefix_preferred gauge
multihome_ipv6_prefix_preferred{link="isp1",prefix="2001:db8:1:100::/64"} 1
multihome_ipv6_prefix_preferred{link="isp2",prefix="2001:db8:2:100::/64"} 0
`), "multihome_ipv6_prefix_preferred"); err != nil {
		t.Error(err)
	}
	t.Logf("isp2 prefix deprecated on the host %s after the down event", time.Since(at).Round(time.Millisecond))
	if hostPrefixes(t, l)["2001:db8:1:100"] {
		t.Error("isp1 prefix deprecated too")
	}
	src.set("isp2", monitor.Up)
	eventually(t, "isp2 prefix preferred again", func() bool { return !hostPrefixes(t, l)["2001:db8:2:100"] })

	// An operator's drain deprecates too: no new flows, existing ones stay.
	src.admin("isp1", monitor.AdminDrain)
	eventually(t, "drained isp1 prefix deprecated", func() bool { return hostPrefixes(t, l)["2001:db8:1:100"] })
	src.admin("isp1", monitor.AdminNone)
	eventually(t, "isp1 prefix preferred after undrain", func() bool { return !hostPrefixes(t, l)["2001:db8:1:100"] })

	// The standby node of an HA pair: router lifetime 0, so the host drops
	// its default route through the gateway and keeps its addresses; back
	// to master, the default route returns.
	defaultRoute := func() bool {
		out, err := l.Run(context.Background(), "lan1", "ip", "-6", "route", "show", "default").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(out), "default via fe80:")
	}
	eventually(t, "default route via the gateway", defaultRoute)
	a.SetStandby(true)
	eventually(t, "standby: default route withdrawn", func() bool { return !defaultRoute() })
	m := hostPrefixes(t, l)
	dep1, ok1 := m["2001:db8:1:100"]
	dep2, ok2 := m["2001:db8:2:100"]
	if !ok1 || !ok2 || dep1 || dep2 {
		t.Errorf("standby: the host's provider addresses should stay preferred: %v", m)
	}
	a.SetStandby(false)
	eventually(t, "master again: default route back", defaultRoute)

	// Renumbering by Update: isp1 moves to 2001:db8:1:200::/64; the old
	// prefix is advertised with zero lifetimes for ra.retire, then dropped.
	cfg2 := parse(t, strings.Replace(strings.Replace(testConfig, "2001:db8:1:100::/64", "2001:db8:1:200::/64", 1),
		"interval: 1s,", "interval: 1s, retire: 400ms,", 1))
	if err := a.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new prefix autoconfigured and old one deprecated", func() bool {
		m := hostPrefixes(t, l)
		dep, ok := m["2001:db8:1:200"]
		return ok && !dep && m["2001:db8:1:100"]
	})
	if rules := gwShow(t, l, "rule", "show"); strings.Contains(rules, "2001:db8:1:100::/64") || !strings.Contains(rules, "from 2001:db8:1:200::/64 lookup 31000") {
		t.Errorf("rules after renumbering:\n%s", rules)
	}
	if st := a.State(); len(st) != 3 || !st[2].Retired || st[2].Prefix.String() != "2001:db8:1:100::/64" {
		t.Errorf("state right after renumbering: %+v", st)
	}
	time.Sleep(500 * time.Millisecond)
	if st := a.State(); len(st) != 2 {
		t.Errorf("retired prefix still advertised after ra.retire: %+v", st)
	}

	// Switching to nptv6 by reload: the provider prefixes are retired, the
	// internal one advertised, the translation table and rules appear;
	// and back to sadr: the table goes.
	npt := parse(t, strings.Replace(testConfig, "  lan: lan0\n", "  lan: lan0\n  mode: nptv6\n  internal: \"2001:db8:100::/64\"\n", 1))
	if err := a.Update(npt); err != nil {
		t.Fatal(err)
	}
	if tables := string(mustRun(t, l, "gw", "nft", "list", "table", "ip6", NPTTable)); !strings.Contains(tables, "snat prefix to 2001:db8:1:100::/64") {
		t.Errorf("nptv6 table:\n%s", tables)
	}
	rules = gwShow(t, l, "rule", "show")
	if !strings.Contains(rules, "30901:	from 2001:db8:100::/64 fwmark 0/0xff0000 lookup 31000") || strings.Contains(rules, "2001:db8:2:100::/64") {
		t.Errorf("nptv6 rules:\n%s", rules)
	}
	if st := a.State(); len(st) < 3 || st[0].Prefix.String() != "2001:db8:100::/64" || !st[0].Usable || !st[1].Retired {
		t.Errorf("nptv6 state: %+v", st)
	}
	src.set("isp1", monitor.Down)
	eventually(t, "nptv6 rule moving to isp2", func() bool {
		return strings.Contains(gwShow(t, l, "rule", "show"), "from 2001:db8:100::/64 fwmark 0/0xff0000 lookup 31001")
	})
	src.set("isp1", monitor.Up)
	if err := a.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	if tables := string(mustRun(t, l, "gw", "nft", "list", "tables")); strings.Contains(tables, NPTTable) {
		t.Errorf("nptv6 table left after switching back to sadr:\n%s", tables)
	}

	// Shutdown: final advertisement (router lifetime 0), rules and
	// addresses removed.
	if !strings.Contains(string(mustRun(t, l, "lan1", "ip", "-6", "route", "show", "default")), "proto ra") {
		t.Error("host has no default route learnt from the RAs")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stopped = true
	if rules := gwShow(t, l, "rule", "show"); strings.Contains(rules, "3090") {
		t.Errorf("rules left after shutdown:\n%s", rules)
	}
	if addrs := gwShow(t, l, "addr", "show", "dev", "lan0"); strings.Contains(addrs, "2001:db8:1:") || strings.Contains(addrs, "2001:db8:2:100::1") {
		t.Errorf("addresses left after shutdown:\n%s", addrs)
	}
	eventually(t, "host dropping the RA default route", func() bool {
		return !strings.Contains(string(mustRun(t, l, "lan1", "ip", "-6", "route", "show", "default")), "proto ra")
	})
	if a.Sent() < 3 {
		t.Errorf("only %d advertisements sent", a.Sent())
	}
}

func registry(t *testing.T, a *Advertiser) *prometheus.Registry {
	t.Helper()
	r := prometheus.NewRegistry()
	if err := r.Register(a.Collector()); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRun(t *testing.T, l *lab.Lab, role string, argv ...string) []byte {
	t.Helper()
	out, err := l.Run(context.Background(), role, argv...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
