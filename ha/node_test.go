package ha

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

func TestParseStats(t *testing.T) {
	b, err := os.ReadFile("testdata/conntrackd-stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := parseStats(string(b)); got != (stats{internal: 12, external: 104, received: 51234}) {
		t.Errorf("got %+v", got)
	}
}

func TestParseNotify(t *testing.T) {
	for _, tc := range []struct{ line, kind, name, state string }{
		{`GROUP "multihome" MASTER 0`, "GROUP", "multihome", "MASTER"},
		{`INSTANCE "lan" BACKUP 110`, "INSTANCE", "lan", "BACKUP"},
		{`INSTANCE "isp1" MASTER_RX_LOWER_PRI 120`, "INSTANCE", "isp1", "MASTER_RX_LOWER_PRI"},
	} {
		k, n, s, ok := parseNotify(tc.line)
		if !ok || k != tc.kind || n != tc.name || s != tc.state {
			t.Errorf("%q: %q %q %q %v", tc.line, k, n, s, ok)
		}
	}
	for _, bad := range []string{"", "GROUP multihome MASTER", `INSTANCE "lan`} {
		if _, _, _, ok := parseNotify(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestInstanceStates: an instance's state in the status is its last
// state, not the last event keepalived reported for it
// (MASTER_RX_LOWER_PRI, seen when both nodes came up as master for a
// moment, left "master_rx_lower_pri" in the status of a master).
func TestInstanceStates(t *testing.T) {
	n, err := New(parse(t, pairYAML), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`INSTANCE "lan" BACKUP 100`, `INSTANCE "lan" MASTER 100`, `INSTANCE "lan" MASTER_RX_LOWER_PRI 100`} {
		n.onNotify(t.Context(), line)
	}
	if got := n.Status().Instances["lan"]; got != "master" {
		t.Errorf("lan: %q, want master", got)
	}
}

func FuzzParseNotify(f *testing.F) {
	f.Add(`GROUP "multihome" MASTER 0`)
	f.Add(`INSTANCE "" FAULT`)
	f.Fuzz(func(t *testing.T, line string) {
		k, _, s, ok := parseNotify(line)
		if ok && (k == "" || s == "") {
			t.Errorf("%q: empty kind or state", line)
		}
	})
}

func TestHealthOf(t *testing.T) {
	h := &config.HA{LinkWeight: 10}
	st := func(states ...monitor.State) []monitor.Status {
		var out []monitor.Status
		for _, s := range states {
			out = append(out, monitor.Status{State: s})
		}
		return out
	}
	for _, tc := range []struct {
		links  []monitor.Status
		points int
		fault  bool
	}{
		{st(monitor.Up, monitor.Up), 20, false},
		{st(monitor.Up, monitor.Degraded), 15, false},
		{st(monitor.Down, monitor.Up), 10, false},
		{st(monitor.Down, monitor.Down), 0, true},
		{st(monitor.Unknown, monitor.Down), 0, false}, // not judged yet: no fault
	} {
		got := HealthOf(h, tc.links)
		if got.Points != tc.points || got.Fault != tc.fault {
			t.Errorf("%v: %+v, want %d points, fault %v", tc.links, got, tc.points, tc.fault)
		}
	}
}

// A reload that changes what conntrackd reads, or the node's identity, is
// refused with the reason; nothing is applied.
func TestUpdateRefuses(t *testing.T) {
	old := parse(t, pairYAML)
	n, err := New(old, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"address: 203.0.113.249/30, partner: 203.0.113.250", "address: 203.0.113.253/30, partner: 203.0.113.254", "the sync link or the links' own addresses changed: conntrackd cannot reload"},
		{"partner: gwb", "partner: gwc", "node/partner changed (gwa/gwb → gwa/gwc): restart multihome"},
		{"run_dir: /run/multihome/ha-gwa", "run_dir: /run/multihome/other", "run_dir, keepalived or conntrackd changed"},
	} {
		err := n.Update(parse(t, strings.Replace(pairYAML, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
	noHA := strings.Split(pairYAML, "ha:\n")[0]
	if err := n.Update(parse(t, noHA)); err == nil || !strings.Contains(err.Error(), "the section was removed") {
		t.Errorf("section removed: %v", err)
	}
}

// TestUpdateAfterRun: a reload that reaches a node whose Run has returned
// (a SIGHUP just before the SIGTERM) fails at once instead of waiting 5 s
// for a loop that is gone; the daemon's stop waited for it.
func TestUpdateAfterRun(t *testing.T) {
	cfg := parse(t, strings.Replace(pairYAML, "  node: gwa\n", "  node: gwa\n  version: 2\n  advert_interval: 1s\n  auth_pass_file: /nonexistent/vrrp.pass\n", 1))
	n, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "auth_pass_file") {
		t.Fatalf("Run: %v, want the missing auth_pass_file", err)
	}
	began := time.Now()
	if err := n.Update(cfg); err == nil || time.Since(began) > time.Second {
		t.Errorf("Update after Run returned: %v after %v, want an error at once", err, time.Since(began))
	}
}

// TestConntrackdBounded: a conntrackd client command that hangs is killed
// at its bound, counted as a bound timeout of call "conntrackd" and
// reported as bound.ErrTimeout; a quick one returns its output.
func TestConntrackdBounded(t *testing.T) {
	dir := t.TempDir()
	hang, quick := filepath.Join(dir, "hang"), filepath.Join(dir, "quick")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 30\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(quick, []byte("#!/bin/sh\necho \"$@\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { conntrackdTimeout = d }(conntrackdTimeout)
	conntrackdTimeout = 200 * time.Millisecond
	before := bound.TimeoutCount("conntrackd")
	began := time.Now()
	_, err := conntrackdRun(context.Background(), hang, "/nonexistent.conf", "-c")
	if !errors.Is(err, bound.ErrTimeout) || time.Since(began) > 5*time.Second {
		t.Fatalf("hung conntrackd -c: %v after %v, want bound.ErrTimeout after ~200ms", err, time.Since(began))
	}
	if got := bound.TimeoutCount("conntrackd") - before; got != 1 {
		t.Errorf("conntrackd timeouts counted: %v, want 1", got)
	}
	out, err := conntrackdRun(context.Background(), quick, "/x.conf", "-s")
	if err != nil || strings.TrimSpace(string(out)) != "-C /x.conf -s" {
		t.Errorf("quick conntrackd -s: %q, %v", out, err)
	}
	if got := bound.TimeoutCount("conntrackd") - before; got != 1 {
		t.Errorf("conntrackd timeouts counted: %v, want still 1", got)
	}
}

// keepalived refuses to start while its pid file names a process that
// exists. After a power loss the file names its own zombie (until init
// reaps it) or, once the pid is reused, another program: those files
// are removed before a start; one naming a live keepalived is kept.
func TestRemoveDeadPIDFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, pid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A zombie keepalived: a child named keepalived that exited and is
	// not waited for yet.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(dir, "keepalived")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	zombie := exec.Command(bin, "0")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(zombie.Process.Pid) + "/stat")
		if strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no zombie: %s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	live := exec.Command(bin, "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()

	zombieFile := write("zombie.pid", zombie.Process.Pid)
	foreign := write("foreign.pid", os.Getpid()) // this test, not keepalived
	liveFile := write("live.pid", live.Process.Pid)
	garbage := filepath.Join(dir, "garbage.pid")
	os.WriteFile(garbage, []byte("x\n"), 0o644)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := removeDeadPIDFiles(log, "/usr/sbin/keepalived", zombieFile, foreign, liveFile, garbage, filepath.Join(dir, "missing.pid")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{zombieFile, foreign, garbage} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept (%v): it names no live keepalived", filepath.Base(f), err)
		}
	}
	if _, err := os.Stat(liveFile); err != nil {
		t.Errorf("the live keepalived's pid file: %v", err)
	}
}
