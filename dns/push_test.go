package dns

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// nsPrefix names this package's throwaway namespaces (see netns.Unique).
const nsPrefix = "mhdns"

// testNS makes a throwaway namespace with loopback up, removed at the
// end of the test. Leftovers of crashed runs are swept first.
func testNS(t *testing.T, role string) string {
	t.Helper()
	requireRoot(t)
	if stale, _ := netns.Stale(nsPrefix); len(stale) > 0 {
		for _, n := range stale {
			netns.Delete(n)
		}
	}
	name := netns.Unique(nsPrefix, role)
	if err := netns.Add(name); err != nil {
		t.Fatalf("netns: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("netns delete: %v", err)
		}
	})
	if out, err := netns.Command(context.Background(), name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	return name
}

func inNS(ns string) func(func() error) error {
	return func(f func() error) error { return netns.Do(ns, f) }
}

// knot is a knotd running in a namespace, serving example.com from a zone
// file and accepting TSIG-signed updates.
type knot struct {
	ns, dir, addr string
	mu            sync.Mutex
	cmd           *exec.Cmd
	logMu         sync.Mutex
	log           bytes.Buffer
}

func (k *knot) logs() string {
	k.logMu.Lock()
	defer k.logMu.Unlock()
	return k.log.String()
}

const knotZone = `$ORIGIN example.com.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 604800 30
@ NS ns1
ns1 A 192.0.2.53
www A 192.0.2.99
www TXT "not managed by multihome"
`

func startKnot(t *testing.T, ns string) *knot {
	t.Helper()
	bin, err := exec.LookPath("knotd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/knotd"); err2 != nil {
			t.Skip("knotd not installed (apt-get install knot)")
		}
		bin = "/usr/sbin/knotd"
	}
	dir := t.TempDir()
	k := &knot{ns: ns, dir: dir, addr: "127.0.0.1:5300"}
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@5300
log:
  - target: stderr
    any: info
database:
    storage: "%[1]s/db"
key:
  - id: mhkey.
    algorithm: hmac-sha256
    secret: %[2]s
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
`, dir, testSecret)
	// knotd keeps updates in its journal there, and fails them without it.
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "knot.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(knotZone), 0o644); err != nil {
		t.Fatal(err)
	}
	k.start(t, bin)
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("knotd log:\n%s", k.logs())
		}
	})
	return k
}

func (k *knot) start(t *testing.T, bin string) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cmd = netns.Command(context.Background(), k.ns, bin, "-c", filepath.Join(k.dir, "knot.conf"))
	k.cmd.Stdout = lockedWriter{&k.logMu, &k.log}
	k.cmd.Stderr = k.cmd.Stdout
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("knotd: %v", err)
	}
	eventually(t, 5*time.Second, "knotd answering", func() bool {
		_, err := k.query("example.com.", mdns.TypeSOA)
		return err == nil
	})
}

func (k *knot) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cmd != nil && k.cmd.Process != nil {
		k.cmd.Process.Kill()
		k.cmd.Wait()
		k.cmd = nil
	}
}

// query asks knotd from inside its namespace.
func (k *knot) query(name string, qtype uint16) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := netns.DialContext(ctx, k.ns, nil, "udp", k.addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	cl := &mdns.Client{Timeout: time.Second}
	r, _, err := cl.ExchangeWithConnContext(ctx, m, &mdns.Conn{Conn: c})
	return r, err
}

func (k *knot) must(t *testing.T, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	r, err := k.query(name, qtype)
	if err != nil {
		t.Fatalf("query knot: %v", err)
	}
	return r
}

func (k *knot) serial(t *testing.T) uint32 {
	return k.must(t, "example.com.", mdns.TypeSOA).Answer[0].(*mdns.SOA).Serial
}

// waitKnot polls knotd until www's qtype addresses are want (sorted).
func (k *knot) wait(t *testing.T, qtype uint16, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := k.query("www.example.com.", qtype); err == nil {
			if got = sortedAddrs(r); got == want {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("knot www %s = %q, want %q", mdns.TypeToString[qtype], got, want)
}

const pushYAML = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
dns:
  keys: [{name: mhkey, algorithm: hmac-sha256, secret: "` + testSecret + `"}]
  zones:
    - name: example.com
      mode: push
      push: {server: "127.0.0.1:5300", key: mhkey, retry_min: 50ms, retry_max: 400ms, verify: 200ms, timeout: 500ms}
      names:
        - name: www
          ttl: 30s
          records:
            - {link: isp1, a: 198.51.100.2, aaaa: "2001:db8:1::2"}
            - {link: isp2, a: 198.51.100.18}
`

func TestPushKnot(t *testing.T) {
	ns := testNS(t, "knot")
	k := startKnot(t, ns)
	s0 := k.serial(t)

	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, parseConfig(t, pushYAML), src, inNS(ns))

	// The stale record is replaced by the healthy links' addresses.
	k.wait(t, mdns.TypeA, join(a1, a2))
	k.wait(t, mdns.TypeAAAA, "2001:db8:1::2")
	if r := k.must(t, "www.example.com.", mdns.TypeA); r.Answer[0].Header().Ttl != 30 {
		t.Errorf("TTL at knot %d, want the name's 30", r.Answer[0].Header().Ttl)
	}
	// Records multihome does not manage are left alone.
	if r := k.must(t, "www.example.com.", mdns.TypeTXT); len(r.Answer) != 1 {
		t.Errorf("unmanaged TXT touched: %v", r)
	}

	// Link down: its address leaves the primary.
	start := time.Now()
	src.state("isp1", monitor.Down)
	k.wait(t, mdns.TypeA, a2)
	k.wait(t, mdns.TypeAAAA, "")
	t.Logf("knot followed link down in %v", time.Since(start))
	src.state("isp1", monitor.Up)
	k.wait(t, mdns.TypeA, join(a1, a2))
	k.wait(t, mdns.TypeAAAA, "2001:db8:1::2")

	// No churn: events that change no record push nothing. Knot serves
	// an update before multihome has read its reply and counted it: the
	// count is read once the third update (start, down, up) is in.
	eventually(t, 2*time.Second, "3 updates counted", func() bool { return ts.Stats().UpdatesPushed >= 3 })
	pushed, serial := ts.Stats().UpdatesPushed, k.serial(t)
	if serial == s0 {
		t.Error("knot serial did not move with the updates")
	}
	for i := range 5 {
		src.set("isp2", func(s *monitor.Status) { s.UtilDown = float64(i) / 10 })
	}
	time.Sleep(500 * time.Millisecond) // two verify rounds too
	if st := ts.Stats(); st.UpdatesPushed != pushed || k.serial(t) != serial {
		t.Errorf("no-op events pushed %d updates, knot serial %d → %d", st.UpdatesPushed-pushed, serial, k.serial(t))
	}
	t.Logf("updates pushed: %d (start, down, up), records +%d -%d", pushed, ts.Stats().RecordsAdded, ts.Stats().RecordsRemoved)
	if pushed != 3 {
		t.Errorf("%d updates for 3 changes", pushed)
	}

	// Someone edits the records behind our back: the verify round repairs.
	m := new(mdns.Msg).SetUpdate("example.com.")
	m.Insert(addrRRs("www.example.com.", mdns.TypeA, 30, []netip.Addr{netip.MustParseAddr("192.0.2.123")}))
	m.SetTsig("mhkey.", mdns.HmacSHA256, 300, time.Now().Unix())
	if r, err := ts.exchange(context.Background(), "tcp", m, netip.MustParseAddrPort(k.addr), time.Second); err != nil || r.Rcode != 0 {
		t.Fatalf("foreign update: %v %v", r, err)
	}
	k.wait(t, mdns.TypeA, join(a1, a2, "192.0.2.123"))
	k.wait(t, mdns.TypeA, join(a1, a2))

	// A restarted multihome reads the primary first: nothing to push.
	ts.stop()
	serial = k.serial(t)
	ts2 := startServer(t, parseConfig(t, pushYAML), src, inNS(ns))
	time.Sleep(300 * time.Millisecond)
	if st := ts2.Stats(); st.UpdatesPushed != 0 || k.serial(t) != serial {
		t.Errorf("restart pushed %d updates (serial %d → %d)", st.UpdatesPushed, serial, k.serial(t))
	}

	// Primary down: retries with backoff until it is back.
	k.stop()
	src.state("isp2", monitor.Down)
	eventually(t, 3*time.Second, "failed attempts", func() bool { return ts2.Stats().UpdateFailures >= 2 })
	bin, _ := exec.LookPath("knotd")
	if bin == "" {
		bin = "/usr/sbin/knotd"
	}
	k.start(t, bin)
	k.wait(t, mdns.TypeA, a1)
	t.Logf("after the primary came back: %d failures, %d updates", ts2.Stats().UpdateFailures, ts2.Stats().UpdatesPushed)
}

// TestPushStandby: an HA pair's standby answers as the master does but
// pushes nothing to the primary; on becoming master it pushes the
// records it answers with at once, and as standby again it stops.
func TestPushStandby(t *testing.T) {
	ns := testNS(t, "knot")
	k := startKnot(t, ns)
	src := newFakeSource("isp1", "isp2")
	// Served and pushed; both nodes of a pair are the zone's name servers.
	y := strings.Replace(pushYAML, "      mode: push\n", "      mode: both\n      records: [\"@ NS gwa\", \"@ NS gwb\", \"gwa A 192.0.2.53\", \"gwb A 192.0.2.54\"]\n", 1)
	cfg := parseConfig(t, y+"  listen: [\"127.0.0.1:53\"]\n")
	cfg.DNS.Listen[0] = netip.AddrPortFrom(cfg.DNS.Listen[0].Addr(), 0)
	s, err := New(cfg, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s.SetStandby(true) // as the daemon does before Run on an HA node
	s.inNS = inNS(ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, 5*time.Second, "listening", func() bool { return len(s.Addrs()) > 0 })
	addr := s.Addrs()[0].String()
	answer := func() string {
		var got string
		if err := netns.Do(ns, func() error {
			got = sortedAddrs(queryAt(t, "udp", addr, "www.example.com.", mdns.TypeA))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}

	// The standby answers with the healthy links' addresses; the primary
	// keeps the zone file's record, through a link change too.
	serial := k.serial(t)
	if got := answer(); got != join(a1, a2) {
		t.Errorf("standby answers %q, want %q", got, join(a1, a2))
	}
	src.state("isp1", monitor.Down)
	eventually(t, 2*time.Second, "standby answering the change", func() bool { return answer() == a2 })
	time.Sleep(600 * time.Millisecond) // three verify rounds
	if got := sortedAddrs(k.must(t, "www.example.com.", mdns.TypeA)); got != "192.0.2.99" || k.serial(t) != serial || s.Stats().UpdatesPushed != 0 {
		t.Fatalf("the standby pushed: knot has %q (serial %d → %d), %d updates", got, serial, k.serial(t), s.Stats().UpdatesPushed)
	}

	// Master: the current records go out at once.
	start := time.Now()
	s.SetStandby(false)
	k.wait(t, mdns.TypeA, a2)
	t.Logf("became master: pushed to knot in %v", time.Since(start).Round(time.Millisecond))
	k.wait(t, mdns.TypeAAAA, "")

	// Standby again: link changes reach the answers, not the primary.
	s.SetStandby(true)
	pushed, serial := s.Stats().UpdatesPushed, k.serial(t)
	src.state("isp1", monitor.Up)
	eventually(t, 2*time.Second, "standby answering the recovery", func() bool { return answer() == join(a1, a2) })
	time.Sleep(600 * time.Millisecond)
	if got := sortedAddrs(k.must(t, "www.example.com.", mdns.TypeA)); got != a2 || k.serial(t) != serial || s.Stats().UpdatesPushed != pushed {
		t.Errorf("standby again pushed: knot has %q (serial %d → %d), %d more updates", got, serial, k.serial(t), s.Stats().UpdatesPushed-pushed)
	}
}
