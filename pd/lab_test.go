package pd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// labKea runs ISC Kea in ISP k's namespace, delegating /56s of pool on
// its link to the gateway; everything it writes stays in a temp dir.
func labKea(t *testing.T, l *lab.Lab, isp lab.ISP, pool netip.Prefix) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"Dhcp6": {
  "interfaces-config": {"interfaces": [%q]},
  "lease-database": {"type": "memfile", "persist": true, "name": %q, "lfc-interval": 0},
  "server-id": {"type": "EN", "enterprise-id": 2495, "identifier": "%02x", "persist": false},
  "renew-timer": 100, "rebind-timer": 160, "preferred-lifetime": 200, "valid-lifetime": 300,
  "subnet6": [{"id": 1, "subnet": %q, "interface": %q,
    "pd-pools": [{"prefix": %q, "prefix-len": %d, "delegated-len": 56}]}],
  "loggers": [{"name": "kea-dhcp6", "output_options": [{"output": %q}], "severity": "INFO"}]
}}`, lab.ISPDownIface, filepath.Join(dir, "leases6.csv"), isp.Index, isp.Link6.String(), lab.ISPDownIface,
		pool.Addr().String(), pool.Bits(), filepath.Join(dir, "kea.log"))
	path := filepath.Join(dir, "kea-dhcp6.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := l.Run(context.Background(), isp.Name, "kea-dhcp6", "-c", path)
	cmd.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	logf := filepath.Join(dir, "kea.log")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(logf); strings.Contains(string(b), "DHCP6_STARTED") {
			return logf
		}
		if time.Now().After(deadline) {
			t.Fatalf("kea-dhcp6 in %s did not start", isp.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLabTwoLinks: two clients in the gateway's namespace, one per WAN,
// each bound to its interface, get their delegation from their own ISP's
// Kea over real UDP (port 546 shared through SO_BINDTODEVICE), and
// release it on a stop after Drop.
func TestLabTwoLinks(t *testing.T) {
	if _, err := exec.LookPath("kea-dhcp6"); err != nil {
		t.Skip("kea-dhcp6 not installed (scripts/deps.sh installs kea-dhcp6-server)")
	}
	l := labtest.Up(t, lab.Spec{ISPs: 2}) // skips unless root
	pools := []netip.Prefix{netip.MustParsePrefix("2001:db8:1:8000::/49"), netip.MustParsePrefix("2001:db8:2:8000::/49")}
	var logs []string
	for i, isp := range l.ISPs {
		logs = append(logs, labKea(t, l, isp, pools[i]))
	}
	leases := make(chan Lease, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan struct{}
	var clients []*Client
	start := time.Now()
	for _, isp := range l.ISPs {
		c := New(isp.Name, isp.WAN, 56, func(l Lease) { leases <- l }, slog.New(slog.NewTextHandler(t.Output(), nil)),
			Options{Enter: func(fn func() error) error { return netns.Do(l.NS("gw"), fn) }})
		clients = append(clients, c)
		ch := make(chan struct{})
		done = append(done, ch)
		go func() { c.Run(ctx); close(ch) }()
	}
	stop := func() {
		cancel()
		for _, ch := range done {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Error("a client did not stop within 10 s")
			}
		}
	}
	defer stop()
	got := map[string]Lease{}
	for len(got) < 2 {
		select {
		case le := <-leases:
			got[le.Link] = le
		case <-time.After(15 * time.Second):
			t.Fatalf("leases after 15 s: %+v", got)
		}
	}
	for i, isp := range l.ISPs {
		le := got[isp.Name]
		if le.Lost || le.Prefix.Bits() != 56 || !pools[i].Contains(le.Prefix.Addr()) {
			t.Errorf("%s: lease %+v, want a /56 of %s", isp.Name, le, pools[i])
		}
		if v := time.Until(le.Valid); v < 290*time.Second || v > 300*time.Second {
			t.Errorf("%s: valid lifetime left %s, want ~300 s", isp.Name, v)
		}
		if t1 := time.Until(le.T1); t1 < 90*time.Second || t1 > 100*time.Second {
			t.Errorf("%s: T1 in %s, want ~100 s", isp.Name, t1)
		}
	}
	t.Logf("both links bound %s after start: %s, %s", time.Since(start).Round(time.Millisecond), got["isp1"].Prefix, got["isp2"].Prefix)
	for _, c := range clients {
		c.Drop()
	}
	stop()
	for i, f := range logs {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "DHCP6_RELEASE_PD") || !strings.Contains(string(b), got[l.ISPs[i].Name].Prefix.Addr().String()) {
			t.Errorf("%s's Kea saw no Release of %s:\n%s", l.ISPs[i].Name, got[l.ISPs[i].Name].Prefix, b)
		}
	}
}
