package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
)

// TestAddrSubLearns: addresses the config leaves unset are read from the
// interface; one already learned stays while the interface keeps it; a
// configured address is never replaced; withAddrs fills only the unset.
func TestAddrSubLearns(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
  - {name: b, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18}
`))
	if err != nil {
		t.Fatal(err)
	}
	ifaces := map[string][]netip.Addr{"wan1": {netip.MustParseAddr("198.51.100.2")}, "wan2": {netip.MustParseAddr("198.51.100.19")}}
	read := func(iface string, family int) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, a := range ifaces[iface] {
			if a.Is4() == (family == 4) {
				out = append(out, a)
			}
		}
		return out, nil
	}
	s := newAddrSub(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), read)
	if !s.refresh() {
		t.Fatal("first refresh: nothing learned")
	}
	got := withAddrs(cfg, s.Learned())
	if got.Links[0].Address4 != netip.MustParseAddr("198.51.100.2") || got.Links[1].Address4 != netip.MustParseAddr("198.51.100.18") {
		t.Fatalf("addresses in force %v %v", got.Links[0].Address4, got.Links[1].Address4)
	}
	if cfg.Links[0].Address4.IsValid() {
		t.Error("withAddrs changed the file's config")
	}
	// A second address: the learned one stays.
	ifaces["wan1"] = []netip.Addr{netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:1::2")}
	s.refresh()
	if l := s.Learned()["a"]; l.v4 != netip.MustParseAddr("198.51.100.2") || l.v6 != netip.MustParseAddr("2001:db8:1::2") {
		t.Errorf("after a second address: %+v, want the first kept and the IPv6 one learned", l)
	}
	// The learned address goes: the other is taken.
	ifaces["wan1"] = []netip.Addr{netip.MustParseAddr("198.51.100.3")}
	if !s.refresh() || s.Learned()["a"].v4 != netip.MustParseAddr("198.51.100.3") {
		t.Errorf("after the learned address went: %+v", s.Learned()["a"])
	}
	ifaces["wan1"] = nil
	if !s.refresh() {
		t.Error("losing every address is a change")
	}
	if _, ok := s.Learned()["a"]; ok {
		t.Errorf("still learned: %+v", s.Learned()["a"])
	}
	if s.refresh() {
		t.Error("nothing changed, refresh says it did")
	}
}

// TestAddrSubFollowsChanges: Run re-reads the interfaces when the
// monitor's changes wake it (not only on its slow timer) and re-applies
// the config when what it learned changed.
func TestAddrSubFollowsChanges(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1}
`))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	addr := netip.MustParseAddr("198.51.100.2")
	read := func(iface string, family int) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if family != 4 {
			return nil, nil
		}
		return []netip.Addr{addr}, nil
	}
	s := newAddrSub(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), read)
	s.refresh()
	wake := make(chan struct{}, 1)
	canceled := make(chan struct{})
	s.changes = func() (<-chan struct{}, func()) { return wake, func() { close(canceled) } }
	applied := make(chan struct{}, 8)
	s.apply = func() { applied <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	mu.Lock()
	addr = netip.MustParseAddr("198.51.100.3")
	mu.Unlock()
	wake <- struct{}{}
	select {
	case <-applied:
	case <-time.After(5 * time.Second):
		t.Fatal("a change reported: the config was not re-applied")
	}
	if got := s.Learned()["a"].v4; got != netip.MustParseAddr("198.51.100.3") {
		t.Errorf("learned %v after the change, want 198.51.100.3", got)
	}
	wake <- struct{}{} // nothing changed: nothing applied
	select {
	case <-applied:
		t.Error("re-applied though nothing changed")
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-canceled:
	default:
		t.Error("Run returned without cancelling its wake-ups")
	}
}
