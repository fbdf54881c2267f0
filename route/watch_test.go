package route

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWatchRepairs: with Watch running, a rule deleted from outbound's
// lease is put back on the kernel's event, well before any periodic
// check, and counted in multihome_route_repairs_total; a foreign rule
// outside every lease is left alone.
func TestWatchRepairs(t *testing.T) {
	name, h := testNS(t)
	m := outboundManager(t, h)
	want := DefaultScheme.Desired(testLinks())
	if _, err := m.Set(Outbound, want); err != nil {
		t.Fatal(err)
	}
	ns, err := vnetns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, ns, slogDiscard()) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // subscribed

	foreign := netlink.NewRule()
	foreign.Priority, foreign.Table = 100, 100
	if err := h.RuleAdd(foreign); err != nil {
		t.Fatal(err)
	}
	nrs, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range nrs {
		if r.Priority == DefaultScheme.PriorityBase+10 {
			if err := h.RuleDel(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := m.Current(Outbound)
		if got.String() == want.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired within 5 s:\n%s\nwant:\n%s", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	metric := `# HELP multihome_route_repairs_total Rules and routes changed outside multihome and put back by the route manager's drift repair, by owner.
# TYPE multihome_route_repairs_total counter
multihome_route_repairs_total{owner="outbound"} 1
`
	if err := testutil.CollectAndCompare(m.Collector(), strings.NewReader(metric)); err != nil {
		t.Error(err)
	}
	nrs, _ = h.RuleList(netlink.FAMILY_V4)
	found := false
	for _, r := range nrs {
		found = found || r.Priority == 100
	}
	if !found {
		t.Error("the foreign rule outside every lease was removed")
	}
}
