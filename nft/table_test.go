package nft

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/netns"
)

func testTable(t *testing.T) (*Table, Runner) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique("mhnft", "")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	run := Command("ip", "netns", "exec", name, "nft")
	return NewTable(run, "inet", "multihome"), run
}

func sample(timeout time.Duration, extra string) Ruleset {
	rs := Ruleset{Family: "inet", Name: "multihome", Header: []string{"test"},
		Sets: []Set{{Name: "sticky0", Type: "ipv4_addr", Flags: []string{"dynamic", "timeout"}, Timeout: timeout}},
		Chains: []Chain{
			{Name: "link0", Rules: []string{"meta mark set meta mark & 0xff00ffff | 0x00010000"}},
			{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: "mangle", Policy: "accept", Rules: []string{
				"ct state != new return", "ip saddr @sticky0 goto link0",
			}},
		}}
	if extra != "" {
		rs.Chains = append(rs.Chains, Chain{Name: extra, Rules: []string{"return"}})
	}
	return rs
}

func TestApplyKernel(t *testing.T) {
	tb, run := testTable(t)
	ctx := context.Background()
	if ok, err := tb.Verify(ctx); ok || err != nil {
		t.Fatalf("Verify before Apply: %v %v", ok, err)
	}
	if err := tb.Apply(ctx, sample(10*time.Minute, "extra"), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := tb.Listing(ctx)
	if err != nil || !strings.Contains(first, "chain extra") {
		t.Fatalf("listing %q, %v", first, err)
	}
	if ok, err := tb.Verify(ctx); !ok || err != nil {
		t.Fatalf("Verify after Apply: %v %v", ok, err)
	}
	// A sticky source survives re-applying, also with a changed chain set.
	if _, err := run(ctx, "", "add", "element", "inet", "multihome", "sticky0", "{ 192.0.2.7 }"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Apply(ctx, sample(10*time.Minute, ""), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := tb.Listing(ctx)
	if strings.Contains(second, "chain extra") {
		t.Fatal("obsolete chain kept")
	}
	if err := tb.Apply(ctx, sample(10*time.Minute, ""), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	if third, _ := tb.Listing(ctx); third != second {
		t.Fatalf("same ruleset twice gives a different table:\n%s\n%s", second, third)
	}
	full, _ := run(ctx, "", "list", "set", "inet", "multihome", "sticky0")
	if !strings.Contains(string(full), "192.0.2.7") {
		t.Fatalf("set element lost on re-apply:\n%s", full)
	}
	// A changed regular chain is rewritten in place (incremental).
	changed := sample(10*time.Minute, "")
	changed.Chains[0].Rules = []string{"meta mark set meta mark & 0xff00ffff | 0x00020000"}
	if err := tb.Apply(ctx, changed, nil); err != nil {
		t.Fatal(err)
	}
	if l, _ := tb.Listing(ctx); !strings.Contains(l, "0x00020000") || strings.Contains(l, "| 0x00010000") {
		t.Fatalf("incremental change not applied:\n%s", l)
	}
	if err := tb.Apply(ctx, sample(10*time.Minute, ""), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := tb.Listing(ctx); l != second {
		t.Fatalf("changing back gives a different table:\n%s\nwant\n%s", l, second)
	}
	// Flushing a kept set empties it.
	if err := tb.Apply(ctx, sample(10*time.Minute, ""), []string{"sticky0"}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	full, _ = run(ctx, "", "list", "set", "inet", "multihome", "sticky0")
	if strings.Contains(string(full), "192.0.2.7") {
		t.Fatalf("flushed set still has its element:\n%s", full)
	}
	// A changed set definition replaces the set.
	if err := tb.Apply(ctx, sample(20*time.Minute, ""), nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.Record(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _ := tb.Listing(ctx); !strings.Contains(l, "timeout 20m") {
		t.Fatalf("set timeout not changed:\n%s", l)
	}
	// Tamper is detected.
	if _, err := run(ctx, "", "add", "rule", "inet", "multihome", "prerouting", "counter"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tb.Verify(ctx); ok {
		t.Fatal("Verify missed an added rule")
	}
	if err := tb.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := tb.Exists(ctx); ok || err != nil {
		t.Fatalf("table still exists after Delete: %v", err)
	}
	if err := tb.Delete(ctx); err != nil {
		t.Fatalf("Delete of a missing table: %v", err)
	}
}

func TestRender(t *testing.T) {
	got := sample(90*time.Second, "").String()
	for _, want := range []string{"# test\ntable inet multihome {", "timeout 1m30s", "type filter hook prerouting priority mangle; policy accept;"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered ruleset lacks %q:\n%s", want, got)
		}
	}
	if nftDuration(1500*time.Millisecond) != "1500ms" || nftDuration(3*time.Hour+time.Second) != "3h1s" {
		t.Error("nftDuration")
	}
}
