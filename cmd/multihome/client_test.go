package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/monitor"
)

func TestCmdStatus(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	var out bytes.Buffer
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Logf("\n%s", s)
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want summary, blank, header and 3 links:\n%s", len(lines), s)
	}
	for i, want := range [][]string{
		{"multihome: degraded, 2 of 3 link(s) up (1 degraded)"},
		{},
		{"LINK", "STATE", "ADMIN", "RTT", "LOSS", "UTIL DOWN", "UTIL UP", "TARGETS", "SINCE", "REASON"},
		{"fiber", "up", "-", "9.0ms", "0.0%", "31%", "4%", "3/3", "3h00m", "5 rounds with 3/3 targets answering"},
		{"cable", "up", "21ms", "0.4%", "58%", "45%", "2/2", "47m0s"},
		{"lte", "degraded", "68ms", "12.0%", "6%", "1/2", "6m0s", "loss 12% over 10s"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %q", i+1, w, lines[i])
			}
		}
	}
	// Columns line up: every link's RTT starts where the header's does.
	col := strings.Index(lines[2], "RTT")
	for _, l := range lines[3:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("RTT column not aligned at %d: %q", col, l)
		}
	}

	f.Update("fiber", "carrier lost", func(s *monitor.Status) {
		s.State, s.Health, s.RTT, s.TargetsUp, s.HoldDown = monitor.Down, monitor.Down, 0, 0, true
	})
	if err := f.SetAdmin("cable", monitor.AdminDrain, "maintenance"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runStatus(context.Background(), &out, []string{"--api=" + addr}); err != nil {
		t.Fatal(err)
	}
	s = out.String()
	for _, w := range []string{"1 of 3 link(s) up (1 degraded, 1 draining)", "down (hold-down)", "carrier lost", "drain"} {
		if !strings.Contains(s, w) {
			t.Errorf("status after fiber down and cable drained lacks %q:\n%s", w, s)
		}
	}

	out.Reset()
	if err := runStatus(context.Background(), &out, []string{"--json", "--api", addr}); err != nil || !strings.Contains(out.String(), `"link_summary"`) {
		t.Errorf("status --json: %v\n%s", err, out.String())
	}
}

func TestCmdStatusErrors(t *testing.T) {
	err := runStatus(context.Background(), new(bytes.Buffer), []string{"--api", "unix:/nonexistent/api.sock"})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the daemon at unix:/nonexistent/api.sock") {
		t.Errorf("no daemon: %v", err)
	}
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{Listen: "127.0.0.1:0", Token: "tok"})
	err = runStatus(context.Background(), new(bytes.Buffer), []string{"--api", addr})
	if err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("no token: %v", err)
	}
	if err := runStatus(context.Background(), new(bytes.Buffer), []string{"--api", addr, "--token", "tok"}); err != nil {
		t.Errorf("with token: %v", err)
	}
	if err := runStatus(context.Background(), new(bytes.Buffer), []string{"--bogus"}); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestCmdLink(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	var out bytes.Buffer
	// Flags after the positional arguments, as operators type them.
	if err := runLink(context.Background(), &out, []string{"drain", "cable", "--reason", "modem swap", "--api", addr}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "cable: draining") {
		t.Errorf("output %q", got)
	}
	want := []apitest.Call{{Link: "cable", Admin: monitor.AdminDrain, Reason: "modem swap (via API)"}}
	if err := runLink(context.Background(), &out, []string{"--api", addr, "down", "fiber"}); err != nil {
		t.Fatal(err)
	}
	want = append(want, apitest.Call{Link: "fiber", Admin: monitor.AdminDown, Reason: "via API"})
	if err := runLink(context.Background(), &out, []string{"up", "fiber", "--api", addr}); err != nil {
		t.Fatal(err)
	}
	want = append(want, apitest.Call{Link: "fiber", Admin: monitor.AdminNone, Reason: "via API"})
	got := f.Calls()
	if len(got) != len(want) {
		t.Fatalf("calls %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range [][]string{
		{"explode", "fiber", "--api", addr},
		{"down", "--api", addr},
		{"down", "nope", "--api", addr},
	} {
		if err := runLink(context.Background(), new(bytes.Buffer), bad); err == nil {
			t.Errorf("link %q: no error", bad)
		}
	}
	err := runLink(context.Background(), new(bytes.Buffer), []string{"down", "nope", "--api", addr})
	if err == nil || !strings.Contains(err.Error(), `no link named "nope"`) {
		t.Errorf("unknown link: %v", err)
	}
}

func TestCmdEvents(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	// Wait until the server records events: it subscribes when it starts.
	waitEvent := func(n int) {
		c, _ := api.NewClient(addr, "")
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if l, err := c.Events(context.Background(), 100, ""); err == nil && len(l.Events) >= n {
				return
			}
		}
		t.Fatalf("fewer than %d events recorded", n)
	}
	f.Update("fiber", "3 rounds with 0/3 targets answering (quorum 1)", func(s *monitor.Status) { s.State = monitor.Down })
	waitEvent(1)
	var out bytes.Buffer
	if err := runEvents(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "fiber      state      up -> down         3 rounds with 0/3 targets answering (quorum 1)") {
		t.Errorf("events:\n%s", got)
	}

	// --follow prints the past, then what happens next, until cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runEvents(ctx, pr, []string{"-f", "--api", addr}) }()
	pr.waitFor(t, ctx, "up -> down")
	f.SetAdmin("cable", monitor.AdminDrain, "isp maintenance (via API)")
	pr.waitFor(t, ctx, "cable      admin      drain              operator set admin drain (was none): isp maintenance (via API)")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended with %v", err)
	}
	if err := runEvents(context.Background(), new(bytes.Buffer), []string{"--limit", "x"}); err == nil {
		t.Error("bad --limit accepted")
	}
	if err := runEvents(context.Background(), new(bytes.Buffer), []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) waitFor(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	for !strings.Contains(b.String(), s) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q in:\n%s", s, b.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestFormatSince(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{5 * time.Second, "5s"},
		{61 * time.Second, "1m1s"},
		{3*time.Hour + 5*time.Minute, "3h05m"},
		{72 * time.Hour, "3d"},
	} {
		if got := fmtSince(now, now.Add(-tc.ago)); got != tc.want {
			t.Errorf("fmtSince(%v) = %q, want %q", tc.ago, got, tc.want)
		}
	}
	if fmtSince(now, time.Time{}) != "-" {
		t.Error("zero time")
	}
}
