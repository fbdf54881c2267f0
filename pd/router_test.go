package pd

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// TestRouterSeen: the first router advertising a lifetime is taken; a
// second one is ignored while the first lasts; the first's lifetime 0
// drops it; then the second is taken at its next advertisement.
func TestRouterSeen(t *testing.T) {
	var got []netip.Addr
	r := NewRouter("wan1", nil, func(a netip.Addr) { got = append(got, a) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, b := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	r.seen(a, 0) // lifetime 0: not a default router
	r.seen(a, 30*time.Second)
	r.seen(b, 30*time.Second)
	r.seen(a, 60*time.Second) // refresh: no report
	if d := time.Until(r.expires); d < 59*time.Second {
		t.Errorf("refresh left %s, want 60 s", d)
	}
	r.seen(b, 0)
	r.seen(a, 0)
	r.seen(b, 30*time.Second)
	want := []netip.Addr{a, {}, b}
	if len(got) != len(want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reported %v, want %v", got, want)
		}
	}
}
