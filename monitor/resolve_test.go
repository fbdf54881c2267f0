package monitor

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/probe"
)

// TestMonitorResolvers: a link's probes share one resolver made from its
// resolvers; a reload with other resolvers restarts its probes with a new
// one; a link without resolvers gets none.
func TestMonitorResolvers(t *testing.T) {
	res := func(s ...string) []config.Resolver {
		var out []config.Resolver
		for _, a := range s {
			out = append(out, config.Resolver{AddrPort: netip.MustParseAddrPort(a)})
		}
		return out
	}
	cfg := twoLinks()
	cfg.Links[0].Resolvers = res("198.51.100.53:53", "198.51.100.54:53")
	m, f, events := startFake(t, cfg)
	waitEvent(t, events, 2*time.Second, stateIs("a", Up))
	binding := func(target string) probe.Binding {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.binds[target]
	}
	// Probers are made as their targets' turns come.
	time.Sleep(100 * time.Millisecond) // > the 30ms interval
	b0, b1 := binding("203.0.113.10"), binding("203.0.113.11")
	if b0.Resolver == nil || b0.Resolver != b1.Resolver {
		t.Fatalf("link a's probes: resolvers %p, %p; want one shared", b0.Resolver, b1.Resolver)
	}
	if got := b0.Resolver.Servers(); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.53:53"), netip.MustParseAddrPort("198.51.100.54:53")}) {
		t.Errorf("servers %v", got)
	}
	if b := binding("203.0.113.12"); b.Resolver != nil {
		t.Errorf("link b without resolvers has resolver %v", b.Resolver.Servers())
	}

	cfg = twoLinks()
	cfg.Links[0].Resolvers = res("203.0.113.53:53")
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		b := binding("203.0.113.10")
		if b.Resolver != nil && slices.Equal(b.Resolver.Servers(), []netip.AddrPort{netip.MustParseAddrPort("203.0.113.53:53")}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probes not restarted with the new resolvers: %v", b.Resolver.Servers())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestErrStringResolve: a resolution failure keeps its text in
// last_error, a plain timeout reads "timeout".
func TestErrStringResolve(t *testing.T) {
	err := &probe.ResolveError{Host: "www.example.com", Interface: "wan1",
		Failures: []probe.ServerError{{Server: netip.MustParseAddrPort("203.0.113.53:53"), Err: probe.ErrTimeout}}}
	if got, want := errString(err), "resolve www.example.com via 203.0.113.53 on wan1: timeout"; got != want {
		t.Errorf("errString = %q, want %q", got, want)
	}
	if got := errString(probe.ErrTimeout); got != "timeout" {
		t.Errorf("errString(ErrTimeout) = %q", got)
	}
}
