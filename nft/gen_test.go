package nft

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multihome/multihome/netns"
)

// countLists wraps run, counting the listings it runs.
func countLists(run Runner, n *atomic.Int32) Runner {
	return func(ctx context.Context, stdin string, args ...string) ([]byte, error) {
		if strings.Contains(strings.Join(args, " "), "list") {
			n.Add(1)
		}
		return run(ctx, stdin, args...)
	}
}

// TestVerifySkipsListingWhileGenerationHolds: with a generation source,
// Verify lists the table only after an nftables transaction; a change
// made behind our back is still caught (it is a transaction).
func TestVerifySkipsListingWhileGenerationHolds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique("mhnft", "")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	var lists atomic.Int32
	run := Command("ip", "netns", "exec", name, "nft")
	tb := NewTable(countLists(run, &lists), "inet", "multihome")
	gen := Generation(name)
	tb.SetGeneration(gen)
	ctx := context.Background()

	g0, err := gen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Apply(ctx, sample(10*time.Minute, ""), nil); err != nil {
		t.Fatal(err)
	}
	if g1, err := gen(ctx); err != nil || g1 == g0 {
		t.Fatalf("generation %d before an apply, %d (%v) after: want a change", g0, g1, err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing changed: no listing.
	before := lists.Load()
	for range 3 {
		if ok, err := tb.Verify(ctx); !ok || err != nil {
			t.Fatalf("Verify of an untouched table: %v %v", ok, err)
		}
	}
	if n := lists.Load() - before; n != 0 {
		t.Errorf("Verify listed the table %d times while the generation held", n)
	}
	// A transaction elsewhere: one listing, still in sync, then quiet.
	if _, err := run(ctx, "", "add", "table", "inet", "other"); err != nil {
		t.Fatal(err)
	}
	before = lists.Load()
	for range 2 {
		if ok, err := tb.Verify(ctx); !ok || err != nil {
			t.Fatalf("Verify after another table's change: %v %v", ok, err)
		}
	}
	if n := lists.Load() - before; n != 1 {
		t.Errorf("Verify listed %d times after one foreign transaction, want 1", n)
	}
	// Tampering with our table is caught.
	if _, err := run(ctx, "", "add", "rule", "inet", "multihome", "link0", "return"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tb.Verify(ctx); ok {
		t.Fatal("Verify missed a rule added behind its back")
	}
}
