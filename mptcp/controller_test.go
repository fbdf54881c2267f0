package mptcp

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/monitor"
)

// fakeSource is a monitor.Source whose events the test sends.
type fakeSource struct {
	ch   chan monitor.Event
	snap []monitor.Status
}

func (f *fakeSource) Subscribe() (<-chan monitor.Event, func()) { return f.ch, func() {} }
func (f *fakeSource) Snapshot() []monitor.Status                { return f.snap }

// lockedKernel lets the test read the fake while Run writes it.
type lockedKernel struct {
	mu sync.Mutex
	k  *fakeKernel
}

func (l *lockedKernel) Endpoints() ([]Endpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Endpoints()
}
func (l *lockedKernel) Add(ep Endpoint) error { l.mu.Lock(); defer l.mu.Unlock(); return l.k.Add(ep) }
func (l *lockedKernel) Del(id uint8) error    { l.mu.Lock(); defer l.mu.Unlock(); return l.k.Del(id) }
func (l *lockedKernel) SetFlags(id uint8, f Flags) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.SetFlags(id, f)
}
func (l *lockedKernel) Limits() (Limits, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Limits()
}
func (l *lockedKernel) SetLimits(x Limits) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.SetLimits(x)
}

// TestControllerFollowsEvents: the controller applies the monitor's
// events and learned addresses, and removes its endpoints on stop.
func TestControllerFollowsEvents(t *testing.T) {
	cfg := parse(t, twoLinks+"mptcp: {}\n")
	src := &fakeSource{ch: make(chan monitor.Event), snap: []monitor.Status{{Link: "isp1", State: monitor.Up}, {Link: "isp2", State: monitor.Up}}}
	k := &lockedKernel{k: newFake()}
	c, _ := New(cfg, src, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.dial = func() (Kernel, error) { return k, nil }
	c.interfaces = func(name string) (int32, []netip.Addr, error) {
		if name == "wan1" {
			return 3, []netip.Addr{netip.MustParseAddr("198.51.100.2")}, nil
		}
		return 4, []netip.Addr{netip.MustParseAddr("198.51.100.18"), netip.MustParseAddr("2001:db8:2::2")}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	waitShow := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for show(k) != want {
			if time.Now().After(deadline) {
				t.Fatalf("kernel table\n%s\nwant\n%s", show(k), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitShow(`limits subflows 4 add_addr_accepted 4
198.51.100.2 id 100 subflow ifindex 3
198.51.100.18 id 102 subflow ifindex 4
2001:db8:2::2 id 103 subflow ifindex 4
`)
	src.ch <- monitor.Event{Kind: monitor.StateChanged, Link: "isp2", From: monitor.Up, To: monitor.Down, Status: monitor.Status{Link: "isp2", State: monitor.Down}}
	waitShow("limits subflows 4 add_addr_accepted 4\n198.51.100.2 id 100 subflow ifindex 3\n")
	c.Update(parse(t, twoLinks+"mptcp: {signal: true, subflows: 1}\n"))
	waitShow("limits subflows 1 add_addr_accepted 4\n198.51.100.2 id 100 signal subflow ifindex 3\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := show(k); strings.Contains(got, "id 100") {
		t.Errorf("endpoints left after stop:\n%s", got)
	}
}
