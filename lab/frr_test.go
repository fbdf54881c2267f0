package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFRR runs FRR as the router of both ISPs of a lab and of the core:
// each ISP announces one prefix to the core (isp2 with prepends), the core
// prefers isp1's path and falls back to isp2's when isp1's router stops.
// Stop and Down leave no process and no directory behind.
func TestFRR(t *testing.T) {
	if err := FRRAvailable(); err != nil {
		t.Skip(err)
	}
	l := forTest(t, Spec{ISPs: 2})
	ctx := context.Background()
	start := time.Now()
	core := `router bgp 64499
 bgp router-id 198.51.100.129
 no bgp ebgp-requires-policy
 neighbor 198.51.100.130 remote-as 64501
 neighbor 198.51.100.130 timers 3 9
 neighbor 198.51.100.130 timers connect 1
 neighbor 198.51.100.146 remote-as 64502
 neighbor 198.51.100.146 timers 3 9
 neighbor 198.51.100.146 timers connect 1
`
	isp := func(k int, prepend string) string {
		return fmt.Sprintf(`ip prefix-list own seq 5 permit 203.0.113.128/25
route-map out permit 10
 match ip address prefix-list own
 %s
router bgp %d
 bgp router-id 198.51.100.%d
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.51.100.%d remote-as 64499
 neighbor 198.51.100.%d timers 3 9
 neighbor 198.51.100.%d timers connect 1
 address-family ipv4 unicast
  network 203.0.113.128/25
  neighbor 198.51.100.%d route-map out out
 exit-address-family
`, prepend, 64500+k, 130+16*(k-1), 129+16*(k-1), 129+16*(k-1), 129+16*(k-1), 129+16*(k-1))
	}
	fc, err := l.StartFRR(ctx, "core", core)
	if err != nil {
		t.Fatal(err)
	}
	f1, err := l.StartFRR(ctx, "isp1", isp(1, ""))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := l.StartFRR(ctx, "isp2", isp(2, "set as-path prepend 64502 64502"), "bgpd", "bfdd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StartFRR(ctx, "isp1", ""); err == nil {
		t.Errorf("a second FRR for isp1 started")
	}
	if _, err := l.StartFRR(ctx, "nosuchrole", ""); err == nil {
		t.Errorf("FRR started for an unknown role")
	}
	t.Logf("three FRR instances started in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, err := StartFRRIn(ctx, l.NS("isp1"), "a.b", ""); err == nil {
		t.Errorf("FRR started with a dotted instance name")
	}
	if f1.Name != l.Name+"-isp1" || f1.Role != "isp1" {
		t.Errorf("instance name %q, role %q", f1.Name, f1.Role)
	}

	// The core's best route is isp1's (shorter path); both sessions come up.
	var path string
	var ok bool
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		path, ok, err = fc.Route("203.0.113.128/25")
		if err != nil {
			t.Fatal(err)
		}
		e2, _ := fc.Established("198.51.100.146")
		if ok && path == "64501" && e2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("core's route: %q %v, session to isp2 established %v", path, ok, e2)
		}
	}
	t.Logf("core has isp1's route %s later", time.Since(start).Round(time.Millisecond))
	if _, ok, err := f1.Route("192.0.2.128/25"); ok || err != nil {
		t.Errorf("isp1 has a route nobody announced: %v %v", ok, err)
	}
	if out, err := f2.Vtysh(ctx, "bfdd", "show bfd peers json"); err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "[") {
		t.Errorf("bfdd of isp2: %v %s", err, out)
	}

	// isp1's router stops: the core falls back to isp2's prepended path.
	pids := pidsOf(t, f1)
	stopped := time.Now()
	if err := f1.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("isp1's FRR stopped in %s", time.Since(stopped).Round(time.Millisecond))
	checkGone(t, f1.dir, pids)
	if err := f1.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	start = time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if path, ok, _ = fc.Route("203.0.113.128/25"); ok && path == "64502 64502 64502" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("core's route after isp1 stopped: %q %v, want isp2's 64502 64502 64502", path, ok)
		}
	}

	t.Logf("core falls back to isp2's route %s after isp1's router stopped", time.Since(start).Round(time.Millisecond))

	// Down stops the rest.
	pids = append(pidsOf(t, f2), pidsOf(t, fc)...)
	stopped = time.Now()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Down took %s", time.Since(stopped).Round(time.Millisecond))
	checkGone(t, f2.dir, pids)
	checkGone(t, fc.dir, nil)
}

func pidsOf(t *testing.T, f *FRR) []int {
	t.Helper()
	var pids []int
	for _, p := range f.pids {
		pid, err := readPid(p)
		if err != nil {
			t.Fatal(err)
		}
		if !isFRRProcess(pid) {
			t.Fatalf("pid %d of %s is not an FRR daemon", pid, p)
		}
		pids = append(pids, pid)
	}
	return pids
}

func checkGone(t *testing.T, dir string, pids []int) {
	t.Helper()
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s still exists", dir)
	}
	for _, pid := range pids {
		if isFRRProcess(pid) {
			t.Errorf("FRR daemon %d still runs", pid)
		}
	}
}

// TestCleanupStaleFRR: instances of a dead creator are stopped and
// removed; those of a live one are not.
func TestCleanupStaleFRR(t *testing.T) {
	if err := FRRAvailable(); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// A pid that is surely dead: a finished child's.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead := c.Process.Pid
	prefix := "mhfrrt"
	stale := filepath.Join(FRRRunDir, fmt.Sprintf("%s%dx1-isp1", prefix, dead))
	live := filepath.Join(FRRRunDir, fmt.Sprintf("%s%dx1-isp1", prefix, os.Getpid()))
	for _, d := range []string{stale, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// A pid file naming a process that is not FRR must not be killed.
		if err := os.WriteFile(filepath.Join(d, "bgpd.pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	removed, err := CleanupStaleFRR(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != filepath.Base(stale) {
		t.Errorf("removed %v, want only %s", removed, filepath.Base(stale))
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("%s left", stale)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("%s of a live creator removed", live)
	}
}

func FuzzParseFRRPaths(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"prefix":"192.0.2.128/25","paths":[{"aspath":{"string":"64500 64500","segments":[]},"peer":{"peerId":"198.51.100.2"},"bestpath":{"overall":true}}]}`))
	f.Add([]byte(`{"paths":[{"aspath":{"string":"64500"}},{"aspath":{"string":"64501"},"bestpath":{"overall":false}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		paths, err := parseFRRPaths(b)
		if err != nil && len(paths) > 0 {
			t.Errorf("error %v with paths %+v", err, paths)
		}
	})
}

func TestParseFRRPaths(t *testing.T) {
	for _, c := range []struct {
		in         string
		path, peer string // of the best path
		n          int
		err        bool
	}{
		{`{}`, "", "", 0, false},
		{`{"paths":[{"aspath":{"string":"64501"},"peer":{"peerId":"198.51.100.1"}},{"aspath":{"string":"64500 64500"},"peer":{"peerId":"198.51.100.2"},"bestpath":{"overall":true}}]}`, "64500 64500", "198.51.100.2", 2, false},
		{`{"paths":[{"aspath":{"string":"64501"},"bestpath":{"overall":false}}]}`, "", "", 1, false},
		{`% Unknown command`, "", "", 0, true},
	} {
		paths, err := parseFRRPaths([]byte(c.in))
		var path, peer string
		for _, p := range paths {
			if p.best {
				path, peer = p.asPath, p.peer
			}
		}
		if path != c.path || peer != c.peer || len(paths) != c.n || (err != nil) != c.err {
			t.Errorf("parseFRRPaths(%s) = %+v, %v: want best %q from %q of %d", c.in, paths, err, c.path, c.peer, c.n)
		}
	}
}

// TestCleanupFRR: the prefix selects exactly one lab's instances
// ("mhfrrc1-", not "mhfrrc10-").
func TestCleanupFRR(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	one := filepath.Join(FRRRunDir, "mhfrrc1-isp1")
	ten := filepath.Join(FRRRunDir, "mhfrrc10-isp1")
	for _, d := range []string{one, ten} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	removed, err := CleanupFRR("mhfrrc1-")
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != "mhfrrc1-isp1" {
		t.Errorf("removed %v, want [mhfrrc1-isp1]", removed)
	}
	if _, err := os.Stat(ten); err != nil {
		t.Errorf("another lab's instance removed: %v", err)
	}
	if _, err := CleanupFRR(""); err == nil {
		t.Errorf("CleanupFRR with an empty prefix")
	}
}
