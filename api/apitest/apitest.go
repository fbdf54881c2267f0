// Package apitest provides a fake multihome daemon for testing the API,
// the dashboard and the CLI without a kernel: a Backend whose links are
// whatever the test sets, whose events are published on a monitor.Bus,
// and which records the operator actions it receives.
package apitest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// Call is one SetAdmin call the fake received.
type Call struct {
	Link   string
	Admin  monitor.Admin
	Reason string
}

// Fake is an api.Backend under the test's control.
type Fake struct {
	monitor.Bus

	mu        sync.Mutex
	links     []monitor.Status
	cfg       *config.Config
	reloadErr error
	reloads   int
	calls     []Call
	callc     chan Call
}

var _ api.Backend = (*Fake)(nil)

// NewFake returns a fake daemon with these links and a config naming
// them.
func NewFake(links ...monitor.Status) *Fake {
	f := &Fake{links: links, callc: make(chan Call, 100)}
	var b strings.Builder
	b.WriteString("links:\n")
	for i, l := range links {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    gateway4: 192.0.2.%d\n", l.Link, l.Interface, i+1)
	}
	cfg, err := config.Parse("multihome.yaml", []byte(b.String()))
	if err != nil {
		panic(fmt.Sprintf("apitest: config for the fake links: %v", err))
	}
	f.cfg = cfg
	return f
}

// Links returns three links as a lab could show them: a fibre line
// carrying most traffic, a cable line, and an LTE backup.
func Links() []monitor.Status {
	now := time.Now()
	return []monitor.Status{
		{
			Link: "fiber", Interface: "wan1", State: monitor.Up, Health: monitor.Up, Carrier: true,
			RTT: 9 * time.Millisecond, RTTP50: 9 * time.Millisecond, RTTP95: 14 * time.Millisecond,
			Jitter: 1200 * time.Microsecond, Loss: 0,
			RateDown: 312_000_000, RateUp: 41_000_000, UtilDown: 0.312, UtilUp: 0.041,
			BytesDown: 8_400_000_000, BytesUp: 930_000_000,
			TargetsUp: 3,
			Targets: []monitor.TargetStatus{
				{Type: "icmp", Target: "203.0.113.10", Up: true, RTT: 8 * time.Millisecond, Sent: 9000, Lost: 2},
				{Type: "icmp", Target: "203.0.113.11", Up: true, RTT: 9 * time.Millisecond, Sent: 9000, Lost: 0},
				{Type: "tcp", Target: "203.0.113.12:443", Up: true, RTT: 10 * time.Millisecond, Sent: 9000, Lost: 1},
			},
			Since: now.Add(-3 * time.Hour), Reason: "5 rounds with 3/3 targets answering (quorum 1)",
		},
		{
			Link: "cable", Interface: "wan2", State: monitor.Up, Health: monitor.Up, Carrier: true,
			RTT: 21 * time.Millisecond, RTTP50: 20 * time.Millisecond, RTTP95: 34 * time.Millisecond,
			Jitter: 4 * time.Millisecond, Loss: 0.004,
			RateDown: 58_000_000, RateUp: 9_000_000, UtilDown: 0.58, UtilUp: 0.45,
			BytesDown: 2_100_000_000, BytesUp: 260_000_000,
			TargetsUp: 2,
			Targets: []monitor.TargetStatus{
				{Type: "icmp", Target: "203.0.113.10", Up: true, RTT: 20 * time.Millisecond, Sent: 9000, Lost: 40},
				{Type: "http", Target: "203.0.113.11", Up: true, RTT: 23 * time.Millisecond, Sent: 9000, Lost: 31},
			},
			Since: now.Add(-47 * time.Minute), Reason: "5 rounds with 2/2 targets answering (quorum 1)",
		},
		{
			Link: "lte", Interface: "wwan0", State: monitor.Degraded, Health: monitor.Degraded, Carrier: true,
			RTT: 68 * time.Millisecond, RTTP50: 61 * time.Millisecond, RTTP95: 140 * time.Millisecond,
			Jitter: 18 * time.Millisecond, Loss: 0.12,
			RateDown: 2_400_000, RateUp: 600_000, UtilDown: 0.06, UtilUp: 0.06,
			BytesDown: 120_000_000, BytesUp: 31_000_000,
			TargetsUp: 1,
			Targets: []monitor.TargetStatus{
				{Type: "icmp", Target: "203.0.113.10", Up: true, RTT: 66 * time.Millisecond, Loss: 0.12, Sent: 9000, Lost: 1080},
				{Type: "dns", Target: "203.0.113.53", Up: false, Loss: 1, Sent: 9000, Lost: 3100, LastError: "timeout"},
			},
			Since: now.Add(-6 * time.Minute), Reason: "loss 12% over 10s ≥ 10%",
		},
	}
}

// Snapshot implements monitor.Source.
func (f *Fake) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]monitor.Status, len(f.links))
	for i, l := range f.links {
		l.Targets = append([]monitor.TargetStatus(nil), l.Targets...)
		out[i] = l
	}
	return out
}

// Status returns one link's current status.
func (f *Fake) Status(link string) (monitor.Status, bool) {
	for _, s := range f.Snapshot() {
		if s.Link == link {
			return s, true
		}
	}
	return monitor.Status{}, false
}

// Update changes a link with fn. If its State changed, a StateChanged
// event with reason is published, as the monitor would.
func (f *Fake) Update(link, reason string, fn func(*monitor.Status)) {
	f.mu.Lock()
	i := f.index(link)
	if i < 0 {
		f.mu.Unlock()
		panic("apitest: no link " + link)
	}
	old := f.links[i].State
	fn(&f.links[i])
	s := f.links[i]
	if s.State != old {
		s.Since, s.Reason = time.Now(), reason
		f.links[i] = s
	}
	f.mu.Unlock()
	if s.State != old {
		f.Publish(monitor.Event{Time: s.Since, Kind: monitor.StateChanged, Link: link, From: old, To: s.State, Reason: reason, Status: s})
	}
}

func (f *Fake) index(link string) int {
	for i := range f.links {
		if f.links[i].Link == link {
			return i
		}
	}
	return -1
}

// SetAdmin implements api.Backend like the monitor does: it records the
// override, forces the state down for AdminDown, and publishes the events
// with the monitor's wording.
func (f *Fake) SetAdmin(link string, a monitor.Admin, reason string) error {
	if a < monitor.AdminNone || a > monitor.AdminDrain {
		return fmt.Errorf("monitor: bad admin state %d", a)
	}
	f.mu.Lock()
	i := f.index(link)
	if i < 0 {
		f.mu.Unlock()
		return fmt.Errorf("monitor: no link %q", link)
	}
	c := Call{link, a, reason}
	f.calls = append(f.calls, c)
	s := &f.links[i]
	from, old := s.State, s.Admin
	s.Admin = a
	if a == monitor.AdminDown {
		s.State = monitor.Down
	} else {
		s.State = s.Health
	}
	now := time.Now()
	suffix := ""
	if reason != "" {
		suffix = ": " + reason
	}
	var stateReason string
	if s.State != from {
		stateReason = fmt.Sprintf("operator override cleared, health is %s", s.Health)
		if a == monitor.AdminDown {
			stateReason = "forced down by operator"
		}
		stateReason += suffix
		s.Since, s.Reason = now, stateReason
	}
	st := *s
	f.mu.Unlock()
	select {
	case f.callc <- c:
	default:
	}
	if old != a {
		f.Publish(monitor.Event{Time: now, Kind: monitor.AdminChanged, Link: link, From: from, To: st.State,
			Reason: fmt.Sprintf("operator set admin %s (was %s)%s", a, old, suffix), Status: st})
	}
	if st.State != from {
		f.Publish(monitor.Event{Time: now, Kind: monitor.StateChanged, Link: link, From: from, To: st.State, Reason: stateReason, Status: st})
	}
	return nil
}

// Calls returns the SetAdmin calls received so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// WaitCall waits up to timeout for the next SetAdmin call.
func (f *Fake) WaitCall(timeout time.Duration) (Call, error) {
	select {
	case c := <-f.callc:
		return c, nil
	case <-time.After(timeout):
		return Call{}, errors.New("no SetAdmin call")
	}
}

// Config implements api.Backend.
func (f *Fake) Config() *config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

// SetReloadError makes the following reloads fail with err (nil: succeed).
func (f *Fake) SetReloadError(err error) {
	f.mu.Lock()
	f.reloadErr = err
	f.mu.Unlock()
}

// Reloads returns how many reloads were asked for.
func (f *Fake) Reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// ReloadFile implements api.Backend.
func (f *Fake) ReloadFile() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

// Start runs an API server for b until the test ends. With an empty
// opts.Listen it listens on a unix socket in a fresh directory. It returns
// the server and the address for api.NewClient.
func Start(t testing.TB, b api.Backend, opts api.Options) (*api.Server, string) {
	t.Helper()
	if opts.Listen == "" {
		// Not t.TempDir: socket paths must stay under 108 bytes.
		dir, err := os.MkdirTemp("", "mh-api")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		opts.Listen = "unix:" + filepath.Join(dir, "api.sock")
	}
	s, err := api.New(b, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	for s.Addr() == nil { // subscribed to b: no event published after Start is missed
		select {
		case err := <-done:
			t.Fatalf("api server: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("api server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("api server did not stop within 10s")
		}
	})
	addr := ln.Addr()
	if addr.Network() == "unix" {
		return s, "unix:" + addr.String()
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return s, tcp.String()
	}
	return s, addr.String()
}
