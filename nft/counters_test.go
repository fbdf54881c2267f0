package nft

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/netns"
)

// counted is a table whose output chain counts new flows into counter
// c0, and c1 when extra is set.
func counted(extra bool, comment string) Ruleset {
	rs := Ruleset{Family: "inet", Name: "multihome",
		Counters: []Counter{{Name: "c0", Comment: comment}},
		Chains: []Chain{{Name: "output", Type: "filter", Hook: "output", Priority: "0", Policy: "accept", Rules: []string{
			`ct state new counter name "c0"`,
		}}}}
	if extra {
		rs.Counters = append(rs.Counters, Counter{Name: "c1"})
		rs.Chains[0].Rules = append(rs.Chains[0].Rules, `ct state new counter name "c1"`)
	}
	return rs
}

// TestCountersKernel: named counters count, keep their values when the
// table is re-applied (in full or incrementally), are not a tamper, and
// are deleted when no longer wanted.
func TestCountersKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ns := netns.Unique("mhnft", "")
	if err := netns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	if out, err := netns.Command(context.Background(), ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	tb := NewTable(Command("ip", "netns", "exec", ns, "nft"), "inet", "multihome")
	ctx := context.Background()
	counters := Counters(ns, "inet", "multihome")
	if got, err := counters(ctx); len(got) != 0 || err != nil {
		t.Fatalf("Counters without a table: %v %v, want none", got, err)
	}
	if err := tb.Apply(ctx, counted(true, "first"), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	ping(t, ns, 3)
	got, err := counters(ctx)
	if err != nil || got["c0"] != 3 || got["c1"] != 3 {
		t.Fatalf("counters %v %v, want c0=3 c1=3", got, err)
	}
	if ok, err := tb.Verify(ctx); !ok || err != nil {
		t.Fatalf("counting packets is seen as a tamper: %v %v", ok, err)
	}
	// A full re-apply (a comment changed) keeps the values.
	if err := tb.Apply(ctx, counted(true, "second"), nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := counters(ctx); got["c0"] != 3 || got["c1"] != 3 {
		t.Fatalf("counters after re-apply %v, want 3 and 3", got)
	}
	// Without c1 it is deleted, c0 keeps counting.
	if err := tb.Apply(ctx, counted(false, "second"), nil); err != nil {
		t.Fatal(err)
	}
	ping(t, ns, 1)
	got, err = counters(ctx)
	if _, ok := got["c1"]; ok || err != nil || got["c0"] != 4 {
		t.Fatalf("counters after dropping c1: %v %v, want only c0=4", got, err)
	}
	if l, _ := tb.Listing(ctx); strings.Contains(l, "packets") {
		t.Errorf("listing for tamper checks shows counter values:\n%s", l)
	}
}

// ping runs n pings of one echo to loopback inside ns: n new flows.
func ping(t *testing.T, ns string, n int) {
	t.Helper()
	for range n {
		if out, err := netns.Command(context.Background(), ns, "ping", "-c1", "-W1", "127.0.0.1").CombinedOutput(); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
	}
}

// BenchmarkCounters reads 256 named counters (4 policies × 64 links) from
// a table whose set holds 50,000 elements: what one scrape of
// multihome_outbound_new_flows_total costs at that scale. For comparison,
// BenchmarkListing lists the same table as the tamper check does, and
// BenchmarkNftListCounters runs `nft -j list counters table`.
func BenchmarkCounters(b *testing.B) { benchRead(b, "netlink") }

// BenchmarkListing: `nft -s -t list table` of the same table.
func BenchmarkListing(b *testing.B) { benchRead(b, "listing") }

// BenchmarkNftListCounters: `nft -j list counters table` of the same table.
func BenchmarkNftListCounters(b *testing.B) { benchRead(b, "nft") }

func benchRead(b *testing.B, how string) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a network namespace")
	}
	ns := netns.Unique("mhnft", "")
	if err := netns.Add(ns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { netns.Delete(ns) })
	run := Command("ip", "netns", "exec", ns, "nft")
	tb := NewTable(run, "inet", "multihome")
	ctx := context.Background()
	rs := Ruleset{Family: "inet", Name: "multihome",
		Sets:   []Set{{Name: "sticky0", Type: "ipv4_addr", Flags: []string{"dynamic", "timeout"}, Timeout: time.Hour, Size: 65536}},
		Chains: []Chain{{Name: "output", Type: "filter", Hook: "output", Priority: "0", Policy: "accept"}}}
	for j := range 4 {
		for i := range 64 {
			name := fmt.Sprintf("new/pol%d/isp%d", j, i)
			rs.Counters = append(rs.Counters, Counter{Name: name})
			rs.Chains[0].Rules = append(rs.Chains[0].Rules, fmt.Sprintf("meta mark %d counter name %q", j*64+i+1, name))
		}
	}
	if err := tb.Apply(ctx, rs, nil); err != nil {
		b.Fatal(err)
	}
	var elems strings.Builder
	for k := range 50000 {
		if k%5000 == 0 {
			if elems.Len() > 0 {
				elems.WriteString(" }\n")
			}
			elems.WriteString("add element inet multihome sticky0 { ")
		} else {
			elems.WriteString(", ")
		}
		fmt.Fprintf(&elems, "10.%d.%d.%d", k>>16, (k>>8)&255, k&255)
	}
	elems.WriteString(" }\n")
	if _, err := run(ctx, elems.String(), "-f", "-"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		switch how {
		case "listing":
			if _, err := tb.Listing(ctx); err != nil {
				b.Fatal(err)
			}
			continue
		case "nft":
			if _, err := run(ctx, "", "-j", "list", "counters", "table", "inet", "multihome"); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if m, err := Counters(ns, "inet", "multihome")(ctx); err != nil || len(m) != 256 {
			b.Fatalf("%d counters, %v", len(m), err)
		}
	}
}
