package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// siteRoute4 is the prefix both nodes of the pair originate to ISP 1.
const siteRoute4 = "192.0.2.0/24"

// frrConnections returns how many times FRR's session to peer was
// established and dropped, and its state.
func frrConnections(t *testing.T, f *lab.FRR, peer string) (established, dropped int, state string) {
	t.Helper()
	out, err := f.Vtysh(context.Background(), "bgpd", "show bgp neighbors "+peer+" json")
	if err != nil {
		t.Fatalf("frr neighbour %s: %v", peer, err)
	}
	var r map[string]struct {
		Established int    `json:"connectionsEstablished"`
		Dropped     int    `json:"connectionsDropped"`
		State       string `json:"bgpState"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("frr neighbour %s: %v: %s", peer, err, out)
	}
	return r[peer].Established, r[peer].Dropped, r[peer].State
}

// startISP1FRR runs FRR's bgpd in ISP 1's namespace, peering with both
// nodes' own addresses on the shared handoff.
func startISP1FRR(t *testing.T, p *lab.Pair) *lab.FRR {
	t.Helper()
	isp := p.ISPs[0]
	conf := fmt.Sprintf("router bgp 64501\n bgp router-id %s\n no bgp ebgp-requires-policy\n", isp.Router)
	for _, n := range p.Nodes {
		conf += fmt.Sprintf(" neighbor %[1]s remote-as 64500\n neighbor %[1]s timers 3 9\n neighbor %[1]s timers connect 1\n", n.WAN[0])
	}
	frr, err := lab.StartFRRIn(context.Background(), isp.NS, p.FRRName(isp.Name), conf, "bgpd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := frr.Stop(); err != nil {
			t.Error(err)
		}
	})
	return frr
}

// pairBGP is a node's bgp section: siteRoute4 to ISP 1.
func pairBGP(p *lab.Pair) string {
	return fmt.Sprintf(`bgp:
  asn: 64500
  prefixes: [%s]
  connect_retry: 1s
  neighbors:
    - {link: %s, address: %s, asn: 64501}
`, siteRoute4, p.ISPs[0].Name, p.ISPs[0].Router)
}

// TestPairBGPFollowsRole: both nodes of a pair (real keepalived and
// conntrackd) run BGP to ISP 1's FRR over the shared handoff, each from
// its own address. Only the master's announcement reaches FRR while the
// standby's session stays established. The master's LAN interface goes
// down: keepalived moves the role (fault on the old master), and FRR's
// route moves to the new master over sessions that never reset; each
// node's decision log has its role change and its BGP decision.
func TestPairBGPFollowsRole(t *testing.T) {
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
	p := labtest.UpPair(t, lab.Spec{ISPs: 2})
	frr := startISP1FRR(t, p)
	nodes := startNodes(t, p, func(i int, run string) string { return p.PairConfig(i, run, "100ms") + pairBGP(p) })
	master := waitOneMaster(t, p, 15*time.Second)
	mi := nodeIndex(master)
	standby := p.Other(master)
	addr := func(i int) string { return p.Nodes[i].WAN[0].String() }
	waitFor(t, "both sessions established", 20*time.Second, func() bool {
		_, _, a := frrConnections(t, frr, addr(0))
		_, _, b := frrConnections(t, frr, addr(1))
		return a == "Established" && b == "Established"
	})
	only := func(i int, within time.Duration) time.Time {
		t.Helper()
		var best string
		var n int
		deadline := time.Now().Add(within)
		for {
			if best, n, _ = frr.BestPeer(siteRoute4); best == addr(i) && n == 1 {
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("FRR's paths to %s: best from %q of %d, want only %s's (%s)", siteRoute4, best, n, p.Nodes[i].Role, addr(i))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	only(mi, 10*time.Second)
	time.Sleep(time.Second)
	if best, n, _ := frr.BestPeer(siteRoute4); n != 1 {
		t.Fatalf("the standby %s announces too: best from %s of %d paths", standby, best, n)
	}
	var est, drop [2]int
	for i := range 2 {
		est[i], drop[i], _ = frrConnections(t, frr, addr(i))
	}

	// The master loses its LAN: keepalived's interface tracking puts it
	// in fault, the partner takes the role.
	at := time.Now()
	if err := p.SetLinkUp(master, lab.PairLANIface, false); err != nil {
		t.Fatal(err)
	}
	moved := only(1-mi, 10*time.Second)
	report(t, "master %s lost its LAN → FRR's only path to %s from the new master %s after %v", master, siteRoute4, standby, moved.Sub(at).Round(time.Millisecond))
	if err := p.SetLinkUp(master, lab.PairLANIface, true); err != nil {
		t.Fatal(err)
	}
	// Back from fault the old master is the backup (preemption off): the
	// route stays with the new master.
	time.Sleep(2 * time.Second)
	if best, n, _ := frr.BestPeer(siteRoute4); best != addr(1-mi) || n != 1 {
		t.Errorf("after the old master's LAN came back: best from %s of %d paths, want only %s", best, n, addr(1-mi))
	}
	for i := range 2 {
		e, d, st := frrConnections(t, frr, addr(i))
		if e != est[i] || d != drop[i] || st != "Established" {
			t.Errorf("session to %s reset by the role change: established %d → %d, dropped %d → %d, now %s", p.Nodes[i].Role, est[i], e, drop[i], d, st)
		}
	}
	// The decision logs: each node's role change and its BGP decision.
	for i, want := range map[int][]string{mi: {"ha master->fault", "bgp announce->withdraw"}, 1 - mi: {"ha backup->master", "bgp withdraw->announce"}} {
		c, err := nodes[i].client()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := c.Events(t.Context(), 1000, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ev.Events {
			if e.Kind == "ha" || e.Kind == "bgp" && e.From != "" {
				got = append(got, e.Kind+" "+e.From+"->"+e.To)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s's decision log has no %q: %v", p.Nodes[i].Role, w, got)
			}
		}
	}
}

// knotSecret is the TSIG secret of the pair's updates to Knot.
const knotSecret = "bXVsdGlob21lLXRlc3Qtc2VjcmV0LWtleS0xMjM0NTY="

// startKnot runs knotd in the core namespace as the primary of
// example.com on DNSServer port 5300, accepting updates signed with
// mhkey; it returns the address, stopped when the test ends.
func startKnot(t *testing.T, p *lab.Pair) string {
	t.Helper()
	bin, err := exec.LookPath("knotd")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/knotd"); err != nil {
			t.Skip("knotd not installed (apt-get install knot)")
		}
		bin = "/usr/sbin/knotd"
	}
	dir := t.TempDir()
	addr := net.JoinHostPort(lab.DNSServer, "5300")
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: %[2]s@5300
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s/db"
key:
  - id: mhkey.
    algorithm: hmac-sha256
    secret: %[3]s
acl:
  - id: upd
    key: mhkey.
    action: update
zone:
  - domain: example.com
    storage: "%[1]s"
    file: "example.com.zone"
    zonefile-sync: -1
    acl: upd
`, dir, lab.DNSServer, knotSecret)
	zone := "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 604800 30\n@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.99\n"
	for name, text := range map[string]string{"knot.conf": conf, "example.com.zone": zone} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	var mu sync.Mutex
	cmd := p.Run(context.Background(), lab.RoleCore, bin, "-c", filepath.Join(dir, "knot.conf"))
	cmd.Stdout = &lockedWriter{mu: &mu, w: &log}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("knotd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("knotd log:\n%s", log.String())
			mu.Unlock()
		}
	})
	waitFor(t, "knotd answering", 5*time.Second, func() bool { _, err := knotQuery(p, addr, nil); return err == nil })
	return addr
}

// knotQuery asks Knot for www.example.com's A records from the core
// namespace (sorted, joined by spaces), or sends update (signed) instead.
func knotQuery(p *lab.Pair, addr string, update *mdns.Msg) (string, error) {
	var got string
	err := netns.Do(p.NS(lab.RoleCore), func() error {
		c := &mdns.Client{Net: "tcp", Timeout: time.Second, TsigSecret: map[string]string{"mhkey.": knotSecret}}
		if update != nil {
			update.SetTsig("mhkey.", mdns.HmacSHA256, 300, time.Now().Unix())
			r, _, err := c.Exchange(update, addr)
			if err == nil && r.Rcode != mdns.RcodeSuccess {
				err = fmt.Errorf("update: %s", mdns.RcodeToString[r.Rcode])
			}
			return err
		}
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA), addr)
		if err != nil {
			return err
		}
		var as []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				as = append(as, a.A.String())
			}
		}
		slices.Sort(as)
		got = strings.Join(as, " ")
		return nil
	})
	return got, err
}

// TestPairDNSPushFollowsRole: both nodes of a pair (real keepalived)
// keep example.com's www at Knot in sync (RFC 2136), with no periodic
// verification. Only the master pushes. Someone replaces the record at
// Knot; the master's LAN goes down: the new master pushes the records at
// once on taking the role, the old one pushes nothing more.
func TestPairDNSPushFollowsRole(t *testing.T) {
	p := labtest.UpPair(t, lab.Spec{ISPs: 2})
	primary := startKnot(t, p)
	var want []string
	for k := range p.ISPs {
		want = append(want, p.WANVIP[k].Addr().String())
	}
	slices.Sort(want)
	nodes := startNodes(t, p, func(i int, run string) string {
		y := p.PairConfig(i, run, "100ms") + fmt.Sprintf(`dns:
  keys: [{name: mhkey, algorithm: hmac-sha256, secret: "%s"}]
  zones:
    - name: example.com
      mode: push
      push: {server: "%s", key: mhkey, verify: 0s, retry_min: 100ms, retry_max: 1s}
      names:
        - name: www
          ttl: 30s
          records:
`, knotSecret, primary)
		for k, isp := range p.ISPs {
			y += fmt.Sprintf("            - {link: %s, a: %s}\n", isp.Name, p.WANVIP[k].Addr())
		}
		return y
	})
	master := waitOneMaster(t, p, 15*time.Second)
	mi := nodeIndex(master)
	waitFor(t, "the master's records at Knot", 10*time.Second, func() bool {
		got, _ := knotQuery(p, primary, nil)
		return got == strings.Join(want, " ")
	})
	logOf := func(i int) string {
		nodes[i].mu.Lock()
		defer nodes[i].mu.Unlock()
		return nodes[i].log.String()
	}
	pushes := func(i int) int { return strings.Count(logOf(i), `msg="dns update pushed"`) }
	time.Sleep(time.Second)
	// Both nodes started at once can both become master for a moment
	// before VRRP's tie-break (equal priorities): then the standby may
	// have pushed too, as master. Otherwise only the master pushed, once.
	before := [2]int{pushes(0), pushes(1)}
	wasMaster := strings.Contains(logOf(1-mi), `msg="ha role changed" subsystem=ha from=backup to=master`)
	if before[mi] > 1 || before[mi]+before[1-mi] == 0 || before[1-mi] > 1 || before[1-mi] == 1 && !wasMaster {
		t.Errorf("dns updates pushed: master %s %d, standby %s %d (was master: %v); want 1 and 0, or 1 each after a start as two masters",
			master, before[mi], p.Other(master), before[1-mi], wasMaster)
	}
	if before[1-mi] > 0 {
		t.Logf("both nodes came up as master for a moment: the standby %s pushed then", p.Other(master))
	}

	// A foreign change at the primary, which nobody verifies.
	up := new(mdns.Msg).SetUpdate("example.com.")
	rr, _ := mdns.NewRR("www.example.com. 30 IN A 192.0.2.123")
	up.RemoveRRset([]mdns.RR{rr})
	up.Insert([]mdns.RR{rr})
	if _, err := knotQuery(p, primary, up); err != nil {
		t.Fatal(err)
	}
	if got, _ := knotQuery(p, primary, nil); got != "192.0.2.123" {
		t.Fatalf("Knot after the foreign update: %q", got)
	}
	at := time.Now()
	if err := p.SetLinkUp(master, lab.PairLANIface, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new master's records at Knot", 5*time.Second, func() bool {
		got, _ := knotQuery(p, primary, nil)
		return got == strings.Join(want, " ")
	})
	report(t, "master %s lost its LAN → the new master %s pushed the records to Knot after %v", master, p.Other(master), time.Since(at).Round(time.Millisecond))
	// The new master logs the push once it has read Knot's answer, which
	// can come after Knot already serves the records.
	waitFor(t, "the new master's push logged", 5*time.Second, func() bool { return pushes(1-mi) > before[1-mi] })
	time.Sleep(500 * time.Millisecond) // a second push would show by now
	if m, s := pushes(mi)-before[mi], pushes(1-mi)-before[1-mi]; m != 0 || s != 1 {
		t.Errorf("dns updates pushed since the takeover: old master %s %d, new master %s %d; want 0 and 1", master, m, p.Other(master), s)
	}
}

// TestPairReloadHA: two gateways run multihome with BGP to ISP 1 and no
// ha section: both announce. A reload adds the ha section on both: each
// stands down at once (before keepalived's first report), and only the
// elected master announces again. A reload removes the section from the
// backup: it announces again, as a gateway alone does. No BGP session is
// reset by any of it.
func TestPairReloadHA(t *testing.T) {
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
	p := labtest.UpPair(t, lab.Spec{ISPs: 2})
	frr := startISP1FRR(t, p)
	var withHA, withoutHA [2]string
	nodes := startNodes(t, p, func(i int, run string) string {
		full := p.PairConfig(i, run, "100ms")
		cut := strings.Index(full, "ha:\n")
		withHA[i], withoutHA[i] = full+pairBGP(p), full[:cut]+pairBGP(p)
		if err := os.MkdirAll(run, 0o700); err != nil { // the API socket's
			t.Fatal(err)
		}
		return withoutHA[i]
	})
	addr := func(i int) string { return p.Nodes[i].WAN[0].String() }
	paths := func(want int, within time.Duration, what string) {
		t.Helper()
		waitFor(t, what, within, func() bool { _, n, _ := frr.BestPeer(siteRoute4); return n == want })
	}
	paths(2, 20*time.Second, "both gateways announcing without an ha section")
	var est [2]int
	for i := range 2 {
		est[i], _, _ = frrConnections(t, frr, addr(i))
	}
	logOf := func(i int) string {
		nodes[i].mu.Lock()
		defer nodes[i].mu.Unlock()
		return nodes[i].log.String()
	}
	reloaded := func(i int, from int) bool {
		return strings.Count(logOf(i)[from:], `msg="config reloaded"`) > 0
	}
	sighup := func(i int, text string) int {
		from := len(logOf(i))
		if err := os.WriteFile(nodes[i].conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i].cmd.Process.Signal(syscall.SIGHUP)
		return from
	}

	var mark [2]int
	for i := range 2 {
		mark[i] = sighup(i, withHA[i])
	}
	for i := range 2 {
		waitFor(t, p.Nodes[i].Role+" reloaded with the ha section", 10*time.Second, func() bool { return reloaded(i, mark[i]) })
	}
	master := waitOneMaster(t, p, 15*time.Second)
	mi := nodeIndex(master)
	waitFor(t, "only the master's path at FRR", 10*time.Second, func() bool {
		best, n, _ := frr.BestPeer(siteRoute4)
		return best == addr(mi) && n == 1
	})
	for i := range 2 {
		// Standing down came first, as soon as the ha node was built:
		// before the reload was through (its new subsystems run a
		// trial of 500 ms first) and before any other announcement.
		log := logOf(i)[mark[i]:]
		w := strings.Index(log, `msg="bgp announcement changed"`)
		if w < 0 || !strings.HasPrefix(log[w:], `msg="bgp announcement changed" subsystem=bgp neighbor=`+p.ISPs[0].Router.String()+` link=isp1 from=announce action=withdraw reason="ha: this node is the standby`) ||
			w > strings.Index(log, `msg="config reloaded"`) {
			t.Errorf("%s did not stand down as soon as the ha section was added:\n%s", p.Nodes[i].Role, log)
		}
	}

	// The backup leaves the pair: it is a gateway alone again, and
	// announces.
	bi := 1 - mi
	from := sighup(bi, withoutHA[bi])
	waitFor(t, p.Nodes[bi].Role+" reloaded without the ha section", 10*time.Second, func() bool { return reloaded(bi, from) })
	paths(2, 5*time.Second, "the gateway that left the pair announcing again")
	if !strings.Contains(logOf(bi)[from:], "from=withdraw action=announce reason=\"ha: this node became master") {
		t.Errorf("%s: no announce after the ha section was removed:\n%s", p.Nodes[bi].Role, logOf(bi)[from:])
	}
	for i := range 2 {
		if e, _, st := frrConnections(t, frr, addr(i)); e != est[i] || st != "Established" {
			t.Errorf("session to %s reset by the reloads: established %d → %d, now %s", p.Nodes[i].Role, est[i], e, st)
		}
	}
}
