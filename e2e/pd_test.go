package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// kea is an ISC Kea DHCPv6 server run by a test in a lab namespace, with
// its config, lease file, pid and lock files and log in a temp dir.
type kea struct {
	t   *testing.T
	l   *lab.Lab
	dir string
	cmd *exec.Cmd
	out strings.Builder
	mu  sync.Mutex
}

// keaPDConfig delegates /56s from pool on the ISP's link to the gateway,
// with short timers so that renewals happen within a test.
func keaPDConfig(dir, iface string, pool netip.Prefix, subnetExtra string) string {
	return fmt.Sprintf(`{"Dhcp6": {
  "interfaces-config": {"interfaces": [%q]},
  "lease-database": {"type": "memfile", "persist": true, "name": %q, "lfc-interval": 0},
  "server-id": {"type": "EN", "enterprise-id": 2495, "identifier": "6d756c7469686f6d65", "persist": false},
  "renew-timer": 4, "rebind-timer": 6, "preferred-lifetime": 8, "valid-lifetime": 12,
  "subnet6": [{"id": 1, "subnet": "2001:db8:1::/64", "interface": %q, %s
    "pd-pools": [{"prefix": %q, "prefix-len": %d, "delegated-len": 56}]}],
  "loggers": [{"name": "kea-dhcp6", "output_options": [{"output": %q}], "severity": "DEBUG", "debuglevel": 15}]
}}`, iface, filepath.Join(dir, "leases6.csv"), iface, subnetExtra, pool.Addr().String(), pool.Bits(), filepath.Join(dir, "kea.log"))
}

// startKea runs kea-dhcp6 in the isp1 namespace on its interface toward
// the gateway, delegating from pool, with an empty lease file.
func startKea(t *testing.T, l *lab.Lab, pool netip.Prefix) *kea {
	t.Helper()
	return startKeaWith(t, l, pool, "")
}

// startKeaWith is startKea with subnetExtra (JSON members ending with a
// comma, e.g. `"rapid-commit": true,`) added to the subnet.
func startKeaWith(t *testing.T, l *lab.Lab, pool netip.Prefix, subnetExtra string) *kea {
	t.Helper()
	if _, err := exec.LookPath("kea-dhcp6"); err != nil {
		t.Skip("kea-dhcp6 not installed (scripts/deps.sh installs kea-dhcp6-server)")
	}
	k := &kea{t: t, l: l, dir: t.TempDir()}
	cfg := filepath.Join(k.dir, "kea-dhcp6.json")
	if err := os.WriteFile(cfg, []byte(keaPDConfig(k.dir, lab.ISPDownIface, pool, subnetExtra)), 0o644); err != nil {
		t.Fatal(err)
	}
	k.cmd = l.Run(context.Background(), "isp1", "kea-dhcp6", "-c", cfg)
	k.cmd.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+k.dir, "KEA_LOCKFILE_DIR="+k.dir)
	w := writerFunc(func(b []byte) (int, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.out.Write(b)
	})
	k.cmd.Stdout, k.cmd.Stderr = w, w
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.stop)
	// Ready when it listens on port 547.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(k.log(), "DHCP6_STARTED") {
		if time.Now().After(deadline) {
			t.Fatalf("kea-dhcp6 did not start within 10 s:\n%s\n%s", k.log(), k.stdout())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return k
}

func (k *kea) stop() {
	if k.cmd.ProcessState != nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		k.cmd.Process.Kill()
		<-done
	}
	if k.t.Failed() {
		k.t.Logf("kea log (%s):\n%s", k.dir, k.log())
	}
}

func (k *kea) log() string {
	b, _ := os.ReadFile(filepath.Join(k.dir, "kea.log"))
	return string(b)
}

func (k *kea) stdout() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.String()
}

var pdLogRe = regexp.MustCompile(`time=(\S+) level=\S+ msg="dhcpv6-pd: delegation (bound|restored|changed|renewed|rebound|lost)".* prefix=(\S+)`)

// pdEvent is one lease change in the daemon's log.
type pdEvent struct {
	at     time.Time
	kind   string
	prefix netip.Prefix
}

func pdEvents(d *daemon) []pdEvent {
	var es []pdEvent
	for _, m := range pdLogRe.FindAllStringSubmatch(d.logText(), -1) {
		at, err1 := time.Parse(time.RFC3339Nano, m[1])
		p, err2 := netip.ParsePrefix(m[3])
		if err1 == nil && err2 == nil {
			es = append(es, pdEvent{at, m[2], p})
		}
	}
	return es
}

// waitPD waits for a lease change of kind in the daemon's log, after the
// first n changes.
func waitPD(t *testing.T, d *daemon, n int, kind string, timeout time.Duration) pdEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		es := pdEvents(d)
		for _, e := range es[min(n, len(es)):] {
			if e.kind == kind {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delegation %s within %s; changes: %+v", kind, timeout, es)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// addrWatch records when each global address first appears on lan1
// (kernel notification times from `ip -ts monitor`).
type addrWatch struct {
	mu    sync.Mutex
	first map[netip.Addr]time.Time
}

var monitorRe = regexp.MustCompile(`^\[(\S+)\] (Deleted )?\d+: eth0\s+inet6 (\S+)/64 scope global`)

func watchAddrs(t *testing.T, l *lab.Lab) *addrWatch {
	t.Helper()
	w := &addrWatch{first: map[netip.Addr]time.Time{}}
	cmd := l.Run(context.Background(), "lan1", "ip", "-ts", "-6", "monitor", "address", "dev", "eth0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := monitorRe.FindStringSubmatch(sc.Text())
			if m == nil || m[2] != "" {
				continue
			}
			at, err1 := time.ParseInLocation("2006-01-02T15:04:05.000000", m[1], time.Local)
			a, err2 := netip.ParseAddr(m[3])
			if err1 != nil || err2 != nil {
				continue
			}
			w.mu.Lock()
			if _, ok := w.first[a]; !ok {
				w.first[a] = at
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// appeared returns when a's first notification came.
func (w *addrWatch) appeared(a netip.Addr) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.first[a]
	return at, ok
}

// applied returns the time of the first "learned prefixes and addresses applied" log
// line after after.
func applied(d *daemon, after time.Time) time.Time {
	re := regexp.MustCompile(`time=(\S+) level=\S+ msg="learned prefixes (?:and addresses )?applied"`)
	for _, m := range re.FindAllStringSubmatch(d.logText(), -1) {
		if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && !at.Before(after) {
			return at
		}
	}
	return time.Time{}
}

// latency logs how long after the lease change e the daemon applied it
// and the host's address a appeared.
func latency(t *testing.T, d *daemon, w *addrWatch, e pdEvent, a netip.Addr, what string) {
	t.Helper()
	app := applied(d, e.at)
	// the addresses appear before the daemon logs that it applied them all
	for deadline := time.Now().Add(2 * time.Second); app.IsZero() && time.Now().Before(deadline); app = applied(d, e.at) {
		time.Sleep(20 * time.Millisecond)
	}
	seen, ok := w.appeared(a)
	if !ok || app.IsZero() {
		t.Errorf("%s: no timing (applied %v, address seen %v)", what, app, ok)
		return
	}
	t.Logf("%s %s: applied %s after the Reply, host address %s %s after the Reply", what, e.prefix,
		app.Sub(e.at).Round(time.Millisecond), a, seen.Sub(e.at).Round(time.Millisecond))
}

func gwRules(t *testing.T, l *lab.Lab) string {
	t.Helper()
	out, err := l.Run(context.Background(), "gw", "ip", "-6", "rule", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -6 rule: %v %s", err, out)
	}
	return string(out)
}

// TestIPv6PrefixDelegation: the daemon learns a /56 on isp1 from a real
// Kea server by DHCPv6-PD and uses its /64 number 1 on the LAN exactly
// like a configured prefix (RA, SLAAC on the host, source rule, traffic
// out of isp1); renewals keep it without churn, a SIGHUP keeps it; Kea
// restarted with another pool and no leases answers the next Renew
// without the old prefix and the daemon renumbers the LAN; stopping the
// daemon keeps the delegation (no Release: see TestPDRestart).
func TestIPv6PrefixDelegation(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	setHostSysctls(t, l, "lan1")
	poolA := netip.MustParsePrefix("2001:db8:1:8000::/49")
	poolB := netip.MustParsePrefix("2001:db8:1:4000::/50")
	isp1 := l.ISPs[0]
	// Kea installs no routes: isp1 routes both pools to the gateway.
	for _, p := range []netip.Prefix{poolA, poolB} {
		if out, err := l.Run(context.Background(), "isp1", "ip", "-6", "route", "add", p.String(), "via", isp1.GW6.String(), "dev", lab.ISPDownIface).CombinedOutput(); err != nil {
			t.Fatalf("route %s in isp1: %v %s", p, err, out)
		}
	}
	k := startKea(t, l, poolA)
	w := watchAddrs(t, l)
	// lanhost's AAAA (engineer C's host6 records) follow the learned prefix.
	cfg := withLANHost(t, string(examples.Lab())) + `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s, retire: 30s}
  state_dir: ` + t.TempDir() + `
`
	start := time.Now()
	d, _ := startDaemon(t, l, []byte(cfg))
	d.waitState(10*time.Second, "isp1", monitor.Up)

	// Bound: the LAN /64 is subnet 1 of the delegated /56.
	bound := waitPD(t, d, 0, "bound", 15*time.Second)
	if !poolA.Contains(bound.prefix.Addr()) || bound.prefix.Bits() != 56 {
		t.Fatalf("delegated %s, want a /56 of %s", bound.prefix, poolA)
	}
	lan, err := config.PDSubnet(bound.prefix, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := waitAddr(t, l, lan, 10*time.Second, "SLAAC address in "+lan.String(), func(a hostAddr) bool { return !a.Deprecated })
	seen := time.Now()
	t.Logf("delegated %s %s after start; host address %s (valid %s, preferred %s) seen by polling %s after the Reply",
		bound.prefix, bound.at.Sub(start).Round(time.Millisecond), a.Addr, a.Valid, a.Preferred, seen.Sub(bound.at).Round(time.Millisecond))
	latency(t, d, w, bound, a.Addr, "bound")
	// The API shows the learned prefix with its delegation: renewal and
	// end still ahead, lifetimes capped by the delegation's 12 s.
	v6 := ipv6View(t, d, 10*time.Second, "learned prefix with its lease", func(m map[string]api.IPv6Prefix) bool {
		e := m[lan.String()]
		now := time.Now()
		return prefixIs(m, lan, "isp1", "dhcpv6-pd", "preferred") && e.Lease != nil && e.Lease.Delegated == bound.prefix &&
			e.Lease.RenewAt.After(now) && e.Lease.ValidUntil.After(e.Lease.RenewAt) && !e.Lease.BoundAt.IsZero() && !e.Lease.BoundAt.After(now) &&
			e.Lease.Server != "" && e.ValidLifetime > 0 && e.ValidLifetime <= 12 && e.PreferredLifetime <= e.ValidLifetime
	})
	for _, e := range v6.Prefixes {
		if e.Link == "isp1" && e.Lease != nil {
			t.Logf("GET /api/v1/ipv6: %s from %s, lifetimes %d/%d s, renew in %s, valid for %s", e.Prefix, e.Lease.Delegated, e.PreferredLifetime, e.ValidLifetime,
				e.Lease.RenewAt.Sub(v6.Time).Round(time.Second), e.Lease.ValidUntil.Sub(v6.Time).Round(time.Second))
		}
		if e.Link == "isp2" && (e.Source != "static" || e.Lease != nil || e.Prefix.String() != "2001:db8:2:100::/64") {
			t.Errorf("isp2's static prefix in the API: %+v", e)
		}
	}
	via1 := isp1.GW.String()
	host := func(p netip.Prefix) string { b := p.Addr().As16(); b[15] = 0x80; return netip.AddrFrom16(b).String() }
	waitAAAA(t, l, via1, 5*time.Second, "learned prefix in DNS", host(lan), "2001:db8:2:100::80")
	if v, err := strconv.ParseFloat(a.Valid, 64); err != nil || v > 12 {
		t.Errorf("host address valid lifetime %s: want at most the delegation's 12 s", a.Valid)
	}
	if rules := gwRules(t, l); !strings.Contains(rules, "from "+lan.String()+" lookup") {
		t.Errorf("no source rule from %s:\n%s", lan, rules)
	}
	if dev := routeDev(t, l, a.Addr); dev != "wan1" {
		t.Errorf("gateway routes packets from %s out of %s, want wan1", a.Addr, dev)
	}
	var got string
	for range 30 {
		if got, err = get6(l, a.Addr, time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || got != a.Addr.String() {
		t.Fatalf("GET /ip from %s: %q, %v (the server must see the delegated source)", a.Addr, got, err)
	}

	// Renewals: past T1 (4 s) twice and past the first valid lifetime
	// (12 s), the same prefix, still preferred on the host, no retirement.
	time.Sleep(time.Until(bound.at.Add(14 * time.Second)))
	es := pdEvents(d)
	renewed := 0
	for _, e := range es {
		switch {
		case e.kind == "renewed" && e.prefix == bound.prefix:
			renewed++
		case e.kind != "bound" && e.kind != "renewed":
			t.Errorf("unexpected lease change %+v", e)
		}
	}
	if renewed < 2 {
		t.Errorf("%d renewals in 14 s with T1 = 4 s: %+v", renewed, es)
	}
	if a2, ok := addrIn(hostAddrs(t, l, "lan1"), lan); !ok || a2.Deprecated {
		t.Errorf("after renewals the host's address in %s: %+v, %v", lan, a2, ok)
	}
	if strings.Contains(d.logText(), "prefix retired") {
		t.Errorf("a renewal retired a prefix:\n%s", d.logText())
	}
	if m := metricValue(d.scrape(), `multihome_ipv6_pd_bound{link="isp1"}`); m != 1 {
		t.Errorf("multihome_ipv6_pd_bound{link=isp1} = %v, want 1", m)
	}

	// SIGHUP with the same file keeps the learned prefix.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if strings.Contains(d.logText(), "prefix retired") || !strings.Contains(gwRules(t, l), "from "+lan.String()) {
		t.Errorf("a reload dropped the learned prefix:\n%s", d.logText())
	}

	// Renumbering: Kea restarted with pool B and no leases.
	k.stop()
	n := len(pdEvents(d))
	kb := startKea(t, l, poolB)
	ch := waitPD(t, d, n, "changed", 30*time.Second)
	if !poolB.Contains(ch.prefix.Addr()) {
		t.Fatalf("renumbered to %s, want a /56 of %s", ch.prefix, poolB)
	}
	lanB, _ := config.PDSubnet(ch.prefix, 1)
	b := waitAddr(t, l, lanB, 10*time.Second, "SLAAC address in "+lanB.String(), func(a hostAddr) bool { return !a.Deprecated })
	latency(t, d, w, ch, b.Addr, "renumbered")
	waitAAAA(t, l, via1, 5*time.Second, "renumbered prefix in DNS", host(lanB), "2001:db8:2:100::80")
	// The old one is deprecated at once (retired: lifetimes 0), then gone
	// when its valid lifetime (≤ 12 s) ends.
	if old, ok := addrIn(hostAddrs(t, l, "lan1"), lan); ok && !old.Deprecated {
		t.Errorf("old address %s still preferred after renumbering", old.Addr)
	}
	rules := gwRules(t, l)
	if !strings.Contains(rules, "from "+lanB.String()+" lookup") || strings.Contains(rules, "from "+lan.String()) {
		t.Errorf("rules after renumbering %s → %s:\n%s", lan, lanB, rules)
	}
	for range 30 {
		if got, err = get6(l, b.Addr, time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || got != b.Addr.String() {
		t.Errorf("GET /ip from %s: %q, %v", b.Addr, got, err)
	}

	// Lost: with no server at all the delegation ends at its valid
	// lifetime (12 s after the last Reply), and its /64 is retired like a
	// renumbered one.
	kb.stop()
	n = len(pdEvents(d))
	lost := waitPD(t, d, n, "lost", 25*time.Second)
	if lost.prefix != ch.prefix {
		t.Errorf("lost %s, want %s", lost.prefix, ch.prefix)
	}
	var last pdEvent
	for _, e := range pdEvents(d)[:len(pdEvents(d))-1] {
		last = e
	}
	if d := lost.at.Sub(last.at); d < 11*time.Second || d > 13*time.Second {
		t.Errorf("lost %s after the last Reply (%s %s), want the valid lifetime, 12 s", d, last.kind, last.at)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(gwRules(t, l), "from "+lanB.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("source rule from %s still there 5 s after the loss", lanB)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if old, ok := addrIn(hostAddrs(t, l, "lan1"), lanB); ok && !old.Deprecated {
		t.Errorf("address %s still preferred after the delegation was lost", old.Addr)
	}
	if m := metricValue(d.scrape(), `multihome_ipv6_pd_bound{link="isp1"}`); m != 0 {
		t.Errorf("multihome_ipv6_pd_bound{link=isp1} = %v after the loss, want 0", m)
	}
	waitAAAA(t, l, via1, 5*time.Second, "lost prefix out of DNS", "2001:db8:2:100::80")
	t.Logf("delegation %s lost %s after the last Reply; rules, RA and DNS followed", lost.prefix, lost.at.Sub(last.at).Round(time.Millisecond))

	// A server again: a new Solicit gets a prefix.
	kcStart := time.Now()
	kc := startKea(t, l, poolB)
	again := waitPD(t, d, n, "bound", 20*time.Second)
	t.Logf("bound again to %s %s after the loss, %s after Kea came back (Solicits retransmitted after 1, 2, 4 … s)", again.prefix,
		again.at.Sub(lost.at).Round(time.Millisecond), again.at.Sub(kcStart).Round(time.Millisecond))

	for _, line := range strings.Split(d.logText(), "\n") {
		if strings.Contains(line, "dhcpv6-pd") || strings.Contains(line, "prefix retired") || strings.Contains(line, "learned prefixes") {
			t.Log(line)
		}
	}

	// Stopping the daemon keeps the delegation for the next start.
	stopDaemon(t, d)
	if strings.Contains(kc.log(), "DHCP6_RELEASE_PD") {
		t.Errorf("the daemon released its delegation on stop:\n%s", kc.log())
	}
}

func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop within 10 s of SIGTERM")
	}
}

// keaLeases counts Kea's lease log messages of kind: ADVERT (an
// Advertise to a Solicit), ALLOC (a Reply to a Request or to a Solicit
// with Rapid Commit), RENEW (a Reply to a Renew or Rebind).
func keaLeases(k *kea, kind string) int {
	return strings.Count(k.log(), "DHCP6_PD_LEASE_"+kind+" ")
}

// TestPDRestart: a restarted daemon keeps its delegated prefix. Bound by
// Kea, stopped (no Release), started again: the saved /56 is in use (LAN
// source rule) before any Reply, and Kea sees a Renew, not a Solicit.
// Stopped again, Kea stopped too, started again: the saved prefix stays
// in use until its valid lifetime (12 s after the last Reply) ends.
func TestPDRestart(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	pool := netip.MustParsePrefix("2001:db8:1:8000::/49")
	k := startKea(t, l, pool)
	state := t.TempDir()
	cfg := string(examples.Lab()) + `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s}
  state_dir: ` + state + `
`
	d, _ := startDaemon(t, l, []byte(cfg))
	bound := waitPD(t, d, 0, "bound", 15*time.Second)
	lan, _ := config.PDSubnet(bound.prefix, 1)
	waitRule := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(gwRules(t, l), "from "+lan.String()+" lookup") {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no source rule from %s", what, lan)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRule("bound")
	stopDaemon(t, d)
	file := filepath.Join(state, "dhcpv6-pd-isp1.json")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lease state %s: %v %v, want a 0600 file", file, fi, err)
	}
	if strings.Contains(k.log(), "DHCP6_RELEASE_PD") {
		t.Fatal("the daemon released its delegation on stop")
	}
	solicits, renews := keaLeases(k, "ADVERT")+keaLeases(k, "ALLOC"), keaLeases(k, "RENEW")

	// Restart with Kea up: restored at once, then renewed.
	t0 := time.Now()
	d2, _ := startDaemon(t, l, []byte(cfg))
	restored := waitPD(t, d2, 0, "restored", 10*time.Second)
	waitRule("restored")
	ruleAt := time.Now()
	renewed := waitPD(t, d2, 0, "renewed", 10*time.Second)
	if restored.prefix != bound.prefix || renewed.prefix != bound.prefix {
		t.Errorf("restored %s, renewed %s: want the saved %s", restored.prefix, renewed.prefix, bound.prefix)
	}
	// Log times have millisecond precision: a renewal Kea answers within
	// the restore's millisecond is in order (pdEvents' order says so).
	if renewed.at.Before(restored.at) {
		t.Errorf("the renewal (%s) came before the restored lease was used (%s)", renewed.at, restored.at)
	}
	if es := pdEvents(d2); es[0].kind != "restored" {
		t.Errorf("first lease change after restart: %+v", es)
	}
	if n, r := keaLeases(k, "ADVERT")+keaLeases(k, "ALLOC"), keaLeases(k, "RENEW"); n != solicits || r == renews {
		t.Errorf("after the restart Kea advertised or allocated %d times and renewed %d times, want 0 and at least 1", n-solicits, r-renews)
	}
	t.Logf("restart: %s restored %s after the daemon started, renewed by Kea %s after that; LAN source rule seen %s after start", bound.prefix,
		restored.at.Sub(t0).Round(time.Millisecond), renewed.at.Sub(restored.at).Round(time.Millisecond), ruleAt.Sub(t0).Round(time.Millisecond))

	// Restart with Kea down: kept until the valid lifetime ends.
	n := len(pdEvents(d2))
	last := waitPD(t, d2, n, "renewed", 10*time.Second) // a fresh 12 s
	stopDaemon(t, d2)
	k.stop()
	d3, _ := startDaemon(t, l, []byte(cfg))
	if r := waitPD(t, d3, 0, "restored", 10*time.Second); r.prefix != bound.prefix {
		t.Fatalf("restored %s with Kea down, want %s", r.prefix, bound.prefix)
	}
	waitRule("restored with Kea down")
	time.Sleep(time.Until(last.at.Add(10 * time.Second)))
	if !strings.Contains(gwRules(t, l), "from "+lan.String()+" lookup") || len(pdEvents(d3)) != 1 {
		t.Errorf("10 s after the last Reply (valid 12 s) the saved prefix is no longer in use: %+v", pdEvents(d3))
	}
	lost := waitPD(t, d3, 0, "lost", 10*time.Second)
	if at := lost.at.Sub(last.at); at < 11*time.Second || at > 13500*time.Millisecond {
		t.Errorf("lost %s after the last Reply, want its valid lifetime, 12 s", at)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("lease state after the loss: %v, want removed", err)
	}
	t.Logf("Kea down at restart: %s kept, lost %s after the last Reply", bound.prefix, lost.at.Sub(last.at).Round(time.Millisecond))
}

// TestPDRapidCommit: with rapid_commit and a Kea that allows it, the
// delegation is bound by Solicit and Reply alone (no Request). Then
// reloads: rapid_commit turned off keeps the lease; the dhcpv6_pd entry
// removed releases it and removes its saved state.
func TestPDRapidCommit(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	pool := netip.MustParsePrefix("2001:db8:1:8000::/49")
	k := startKeaWith(t, l, pool, `"rapid-commit": true,`)
	state := t.TempDir()
	cfg := string(examples.Lab()) + `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, rapid_commit: true}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  state_dir: ` + state + `
`
	d, path := startDaemon(t, l, []byte(cfg))
	bound := waitPD(t, d, 0, "bound", 15*time.Second)
	if !pool.Contains(bound.prefix.Addr()) {
		t.Fatalf("bound %s, want a /56 of %s", bound.prefix, pool)
	}
	if a, c := keaLeases(k, "ADVERT"), keaLeases(k, "ALLOC"); a != 0 || c != 1 {
		t.Errorf("Kea advertised %d times and allocated %d times, want one allocation and no Advertise (Solicit, Reply)", a, c)
	}
	t.Logf("bound %s by Solicit and Reply with Rapid Commit", bound.prefix)

	// A reload that only turns rapid_commit off restarts the client, which
	// restores the lease: same prefix, nothing retired, no Release.
	edit := func(old, new string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("config %s: %v, or no %q in it", path, err, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.hup(t); err != nil {
			t.Fatal(err)
		}
	}
	edit("rapid_commit: true", "rapid_commit: false")
	if r := waitPD(t, d, 1, "restored", 5*time.Second); r.prefix != bound.prefix {
		t.Errorf("after the rapid_commit reload: restored %s, want %s", r.prefix, bound.prefix)
	}
	if strings.Contains(d.logText(), "prefix retired") || strings.Contains(k.log(), "DHCP6_RELEASE_PD") {
		t.Errorf("a reload of rapid_commit alone retired or released the prefix")
	}
	// A reload that removes the link's dhcpv6_pd entry releases the
	// delegation and forgets it.
	edit("{link: isp1, dhcpv6_pd: {length: 56, rapid_commit: false}}", `{link: isp1, prefix: "2001:db8:1:100::/64"}`)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(k.log(), "DHCP6_RELEASE_PD") {
		if time.Now().After(deadline) {
			t.Fatal("no Release in Kea's log 5 s after a reload removed the dhcpv6_pd entry")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline = time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(state, "dhcpv6-pd-isp1.json")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease state still there 5 s after the dhcpv6_pd entry was removed")
		}
	}
}

// TestPDGatewayFromRA: isp1 has no gateway6 in the config; radvd in isp1
// advertises its router on the gateway's WAN: the daemon learns isp1's
// link-local address as gateway6 (isp1's IPv6 table routes by it, a LAN
// host's address in the delegated prefix reaches the server through
// it), and when radvd stops (final advertisement, router lifetime 0) the
// gateway is dropped.
func TestPDGatewayFromRA(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("radvd"); err != nil {
		t.Skip("radvd not installed (scripts/deps.sh installs it)")
	}
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	setHostSysctls(t, l, "lan1")
	pool := netip.MustParsePrefix("2001:db8:1:8000::/49")
	isp1 := l.ISPs[0]
	if out, err := l.Run(context.Background(), "isp1", "ip", "-6", "route", "add", pool.String(), "via", isp1.GW6.String(), "dev", lab.ISPDownIface).CombinedOutput(); err != nil {
		t.Fatalf("route %s in isp1: %v %s", pool, err, out)
	}
	startKea(t, l, pool)
	out, err := l.Run(context.Background(), "isp1", "ip", "-6", "-o", "addr", "show", "dev", lab.ISPDownIface, "scope", "link").Output()
	m := regexp.MustCompile(`inet6 (fe80::\S+)/64`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("isp1's link-local address: %v %s", err, out)
	}
	routerLL := netip.MustParseAddr(string(m[1]))
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte("interface "+lab.ISPDownIface+" {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  AdvDefaultLifetime 30;\n};\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	radvd := l.Run(context.Background(), "isp1", "radvd", "-n", "-C", conf, "-p", filepath.Join(dir, "radvd.pid"), "-m", "stderr")
	var radvdOut strings.Builder
	radvd.Stderr = &radvdOut
	if err := radvd.Start(); err != nil {
		t.Fatal(err)
	}
	radvdDone := make(chan struct{})
	go func() { radvd.Wait(); close(radvdDone) }()
	t.Cleanup(func() {
		radvd.Process.Signal(syscall.SIGTERM)
		<-radvdDone
	})

	cfg := strings.Replace(string(examples.Lab()), "    gateway6: 2001:db8:1::1\n", "", 1) + `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s}
  state_dir: ` + t.TempDir() + `
`
	if strings.Contains(cfg, "2001:db8:1::1\n") {
		t.Fatal("isp1's gateway6 still in the config")
	}
	start := time.Now()
	d, _ := startDaemon(t, l, []byte(cfg))
	learned := regexp.MustCompile(`time=(\S+) level=INFO msg="router advertisements: gateway6 learned" .*gateway6=(\S+)`)
	var at time.Time
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := learned.FindStringSubmatch(d.logText()); m != nil {
			if m[2] != routerLL.String() {
				t.Fatalf("learned gateway6 %s, want isp1's %s", m[2], routerLL)
			}
			at, _ = time.Parse(time.RFC3339Nano, m[1])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no gateway6 learned within 15 s")
		}
	}
	route := "default via " + routerLL.String() + " dev wan1"
	tables := func() string {
		out, _ := l.Run(context.Background(), "gw", "ip", "-6", "route", "show", "table", "all").CombinedOutput()
		return string(out)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(tables(), route); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the gateway's tables:\n%s", route, tables())
		}
	}
	t.Logf("gateway6 %s learned %s after start", routerLL, at.Sub(start).Round(time.Millisecond))
	// The API shows the learned next hop as the link's gateway6.
	c, err := api.NewClient(d.api, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	link, err := c.Link(ctx, "isp1")
	cancel()
	if err != nil || link.Gateway6 != routerLL.String() || link.Gateway4 != "198.51.100.1" {
		t.Errorf("GET /api/v1/links/isp1: gateway4 %q gateway6 %q (%v), want 198.51.100.1 and the learned %s", link.Gateway4, link.Gateway6, err, routerLL)
	}
	bound := waitPD(t, d, 0, "bound", 15*time.Second)
	lan, _ := config.PDSubnet(bound.prefix, 1)
	a := waitAddr(t, l, lan, 10*time.Second, "SLAAC address in "+lan.String(), func(a hostAddr) bool { return !a.Deprecated })
	var got string
	for range 30 {
		if got, err = get6(l, a.Addr, time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || got != a.Addr.String() {
		t.Fatalf("GET /ip from %s: %q, %v (through the learned gateway6)", a.Addr, got, err)
	}

	// radvd stops: its final advertisement has router lifetime 0.
	radvd.Process.Signal(syscall.SIGTERM)
	<-radvdDone
	for deadline := time.Now().Add(5 * time.Second); strings.Contains(tables(), route); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("route via %s still there 5 s after radvd stopped:\n%s", routerLL, d.logText())
		}
	}
	if !strings.Contains(d.logText(), `msg="router advertisements: gateway6 lost"`) {
		t.Errorf("no gateway6 lost in the log")
	}
}
