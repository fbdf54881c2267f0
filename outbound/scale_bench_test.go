package outbound

// Scale benchmarks (bench/scale.sh): how the cost of counting, flushing
// and migrating flows, of failing over and of applying the ruleset grows
// with the size of the work. Gated behind MULTIHOME_BENCH=1; each runs
// only inside throwaway namespaces and stops by itself. Every table is
// written as markdown rows to MULTIHOME_BENCH_OUT.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	mhnetns "github.com/multihome/multihome/netns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ti-mo/conntrack"
)

// benchOut writes lines to MULTIHOME_BENCH_OUT (and the test log).
func benchOut(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		t.Log(l)
	}
	if f := os.Getenv("MULTIHOME_BENCH_OUT"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(fh, strings.Join(lines, "\n"))
			fh.Close()
		}
	}
}

// dialConntrack opens conntrack in the namespace fd refers to, as the
// old scrape and migration did for each call (their cost counts it).
func dialConntrack(t *testing.T, fd int) *conntrack.Conn {
	t.Helper()
	ct, err := conntrack.Dial(&netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// sizes returns the sizes to measure: MULTIHOME_BENCH_SIZES (comma
// separated) or def.
func sizes(def ...int) []int {
	s := os.Getenv("MULTIHOME_BENCH_SIZES")
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// cost runs fn and returns its duration and the bytes and objects it
// allocated (the whole process: run nothing else meanwhile).
func cost(fn func()) (time.Duration, uint64, uint64) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	start := time.Now()
	fn()
	took := time.Since(start)
	runtime.ReadMemStats(&b)
	return took, b.TotalAlloc - a.TotalAlloc, b.Mallocs - a.Mallocs
}

func mib(b uint64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
}

func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// TestBenchScaleConntrack: N synthetic entries, half on link a and half
// on link b, in a throwaway namespace's conntrack table: the cost of a
// scrape, of the background count, of the old scrape (a full dump, for
// comparison), of flushing a's half and of migrating b's half (batched,
// then the old way, one round trip per entry).
func TestBenchScaleConntrack(t *testing.T) {
	benchGate(t)
	benchOut(t, "",
		"| entries | create | scrape (median of 20) | scrape alloc | background count | count alloc | old scrape: full dump | old alloc | flush N/2 (one mark) | flush alloc | migrate N/2, batched | migrate alloc | old migrate (dump + delete each) | old alloc |",
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range sizes(10000, 100000, 250000) {
		ns, fd := ctNamespace(t)
		c := ctController(t, ns)
		s := c.view.Load().scheme
		mask := c.o.MarkMask
		created, _, _ := cost(func() {
			synthFlows(t, fd, n/2, s.Mark(0), 1, 17, 53)
			synthFlows(t, fd, n-n/2, s.Mark(1), 2, 17, 53)
		})
		// The old scrape: one full dump into []Flow.
		oldDump, oldDumpB, _ := cost(func() {
			ct := dialConntrack(t, fd)
			defer ct.Close()
			fl, err := ct.Dump(nil)
			if err != nil || len(fl) != n {
				t.Fatalf("dump: %d entries, %v", len(fl), err)
			}
		})
		var err error
		count, countB, _ := cost(func() { _, err = c.countNow() })
		if err != nil {
			t.Fatal(err)
		}
		if got := c.flows.Load().counts; got[0] != n/2 || got[1] != n-n/2 {
			t.Fatalf("count %v, want %d and %d", got, n/2, n-n/2)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(flowCollector{c})
		var scrapes []time.Duration
		var scrapeB uint64
		for range 20 {
			d, b, _ := cost(func() {
				if _, err := reg.Gather(); err != nil {
					t.Fatal(err)
				}
			})
			scrapes = append(scrapes, d)
			scrapeB = max(scrapeB, b)
		}
		var flushed int
		flush, flushB, _ := cost(func() { flushed, err = c.ct.flush(s.Mark(0), mask) })
		if err != nil || flushed != n/2 {
			t.Fatalf("flush: %d, %v", flushed, err)
		}
		r := c.o.Rules[0]
		var moved int
		mig, migB, _ := cost(func() { moved, err = c.ct.deleteMatching(s.Mark(1), mask, r) })
		if err != nil || moved != n-n/2 {
			t.Fatalf("migrate: %d, %v", moved, err)
		}
		synthFlows(t, fd, n-n/2, s.Mark(1), 2, 17, 53)
		oldMig, oldMigB, _ := cost(func() {
			ct := dialConntrack(t, fd)
			defer ct.Close()
			fl, err := ct.DumpFilter(conntrack.NewFilter().Mark(s.Mark(1)).MarkMask(mask), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fl {
				ct.Delete(f)
			}
		})
		benchOut(t, fmt.Sprintf("| %dK | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
			n/1000, ms(created), ms(pct(scrapes, 0.5)), mib(scrapeB), ms(count), mib(countB), ms(oldDump), mib(oldDumpB),
			ms(flush), mib(flushB), ms(mig), mib(migB), ms(oldMig), mib(oldMigB)))
	}
}

// TestBenchScaleFailover: lab with 2 ISPs (failover policy), N synthetic
// entries marked for isp1 in the gateway's table; isp1 blackholed and
// reported down (fake monitor, detection excluded): time to the first new
// LAN connection via isp2, against N. Each trial recreates the entries
// (the flush removed them).
func TestBenchScaleFailover(t *testing.T) {
	benchGate(t)
	e := newEnv(t, lab.Spec{ISPs: 2}, "outbound:\n  policies:\n    - {name: main, type: failover}\n")
	f, err := os.Open(mhnetns.Path(e.l.NS(lab.RoleGW)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	mark := e.c.view.Load().scheme.Mark(0)
	trials := benchTrials()
	benchOut(t, "",
		fmt.Sprintf("| flows on the failed link | first new connection via the other link, median (%d trials) | p95 | longest gap in the stream, median | 90 %% of its flows gone from conntrack after (median) |", trials),
		"|---|---|---|---|---|")
	for _, n := range sizes(0, 10000, 100000, 125000, 250000) {
		var firsts, gaps, flushes []time.Duration
		for i := range trials {
			base, err := (tracker{nsFD: fd}).entries()
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				synthFlows(t, fd, n, mark, 9, 17, 53)
			}
			// When are isp1's entries gone (the table back under n/10)?
			gone := make(chan time.Duration, 1)
			first, gap := fakeBlackhole(t, e, func(t0 time.Time) {
				go func() {
					for time.Since(t0) < 10*time.Second {
						if left, err := (tracker{nsFD: fd}).entries(); err == nil && left <= base+n/10 {
							gone <- time.Since(t0)
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
					gone <- -1
				}()
			})
			flushed := <-gone
			t.Logf("%d flows, trial %d: first new connection %s, gap %s, flushed after %s", n, i, first.Round(time.Millisecond), gap.Round(time.Millisecond), flushed.Round(time.Millisecond))
			firsts, gaps, flushes = append(firsts, first), append(gaps, gap), append(flushes, flushed)
			e.l.Restore("isp1")
			e.src.up("isp1")
			// The flush must be done before the next trial recreates them.
			e.waitFor("isp1's flows flushed", 20*time.Second, func() bool {
				left, err := (tracker{nsFD: fd}).entries()
				return err == nil && left < 20000
			})
			time.Sleep(200 * time.Millisecond)
		}
		gone := ms(pct(flushes, 0.5))
		if n == 0 {
			gone = "(none)"
		}
		benchOut(t, fmt.Sprintf("| %d | %s | %s | %s | %s |", n, ms(pct(firsts, 0.5)), ms(pct(firsts, 0.95)), ms(pct(gaps, 0.5)), gone))
	}
}

// applied is what applyBench measured.
type applied struct {
	initial            time.Duration   // the whole state, from nothing
	updates, readbacks []time.Duration // one link down: apply, then read back
	size               int             // of the rendered state
}

// applyBench applies nLinks links and nRules rules in a throwaway
// namespace, then takes one link down and back rounds times.
func applyBench(t *testing.T, nLinks, nRules, rounds int) applied {
	ns, links, drop := benchNamespace(t, nLinks, func(i int) string {
		return fmt.Sprintf(", weight: %d, priority: %d", 1+i%4, 1+i/16)
	})
	defer drop()
	var b strings.Builder
	b.WriteString(links)
	b.WriteString("outbound:\n  policies:\n    - {name: default, type: weighted}\n    - {name: fo, type: failover}\n    - {name: st, type: sticky}\n    - {name: ll, type: least-loaded, spillover: 80%}\n  rules:\n")
	for i := range nRules {
		fmt.Fprintf(&b, "    - {src: [192.0.2.%d/32], dst: [203.0.113.%d/32], proto: tcp, dport: %d, policy: %s}\n", i%128, i%256, 1000+i%60000, []string{"fo", "st", "ll", "default"}[i%4])
	}
	cfg, err := config.Parse("bench.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var r applied
	c, initial := appliedController(t, cfg, ns)
	defer c.close()
	r.initial = initial
	ctx := context.Background()
	for i := range rounds {
		link := fmt.Sprintf("l%d", 1+i%nLinks)
		st := c.status[link]
		st.State = monitor.Down
		c.status[link] = st
		start := time.Now()
		if err := c.apply(ctx, "bench", true); err != nil {
			t.Fatal(err)
		}
		r.updates = append(r.updates, time.Since(start))
		start = time.Now()
		c.record(ctx)
		r.readbacks = append(r.readbacks, time.Since(start))
		st.State = monitor.Up
		c.status[link] = st
		c.apply(ctx, "bench")
	}
	r.size = len(c.last.text)
	c.cleanup()
	return r
}

// TestBenchScaleApply: ruleset apply time against links 2/16/64 and
// rules 10/1K/10K.
func TestBenchScaleApply(t *testing.T) {
	benchGate(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	benchOut(t, "",
		"| links | rules | ruleset + routes | initial apply | one link down: apply (median of 6) | read-back for tamper checks (median) |",
		"|---|---|---|---|---|---|")
	for _, nl := range []int{2, 16, 64} {
		for _, nr := range sizes(10, 1000, 10000) {
			r := applyBench(t, nl, nr, 6)
			benchOut(t, fmt.Sprintf("| %d | %d | %d KiB | %s | %s | %s |", nl, nr, r.size/1024, ms(r.initial), ms(pct(r.updates, 0.5)), ms(pct(r.readbacks, 0.5))))
		}
	}
}

// TestBenchScaleSticky: a sticky policy over 2 links with N sources in
// the set of the link that stays up: apply of a link-down change (sets
// are kept), the periodic tamper check, and a config reload (full
// replacement keeping the sets).
func TestBenchScaleSticky(t *testing.T) {
	benchGate(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	benchOut(t, "",
		"| sticky sources | load them | link down: apply (new flows move) | then read-back (record) | tamper check (verify, every reconcile) | reload: full apply keeping sets |",
		"|---|---|---|---|---|---|")
	for _, n := range sizes(1000, 10000, 65000, 200000) { // sticky_size 262144: past nft's old implicit 65535
		benchOut(t, stickyBench(t, n))
	}
}

// stickyBench measures TestBenchScaleSticky's row for n sources.
func stickyBench(t *testing.T, n int) string {
	ns, links, drop := benchNamespace(t, 2, nil)
	defer drop()
	cfg, err := config.Parse("bench.yaml", []byte(links+"outbound:\n  policies:\n    - {name: st, type: sticky, sticky_timeout: 1h, sticky_size: 262144}\n  default_policy: st\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := appliedController(t, cfg, ns)
	defer c.close()
	ctx := context.Background()
	// N IPv6 sources (2001:db8::/32) in l2's set.
	// Loaded 10K per nft transaction (one of 100K overflows the
	// netlink socket).
	load := func() time.Duration {
		var took time.Duration
		for from := 0; from < n; from += 10000 {
			var el strings.Builder
			fmt.Fprintf(&el, "add element %s %s %s { ", TableFamily, TableName, stickySet(0, 1, 6))
			for k := from; k < min(n, from+10000); k++ {
				if k > from {
					el.WriteString(", ")
				}
				fmt.Fprintf(&el, "2001:db8::%x:%x timeout 1h", k>>16, k&0xffff)
			}
			el.WriteString(" }\n")
			cmd := mhnetns.Command(ctx, ns, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(el.String())
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("loading sticky sources %d-: %v: %s", from, err, out)
			}
			took += time.Since(start)
		}
		return took
	}
	loaded := load()
	st := c.status["l1"]
	st.State = monitor.Down
	c.status["l1"] = st
	start := time.Now()
	if err := c.apply(ctx, "bench", true); err != nil {
		t.Fatal(err)
	}
	down := time.Since(start)
	start = time.Now()
	c.record(ctx)
	record := time.Since(start)
	start = time.Now()
	if ok, err := c.table.Verify(ctx); err != nil || !ok {
		t.Fatalf("verify: %v %v", ok, err)
	}
	verify := time.Since(start)
	c.inSync = false // as a reload does
	start = time.Now()
	if err := c.apply(ctx, "bench reload"); err != nil {
		t.Fatal(err)
	}
	reload := time.Since(start)
	out, _ := mhnetns.Command(ctx, ns, "nft", "list", "set", TableFamily, TableName, stickySet(0, 1, 6)).Output()
	if kept := strings.Count(string(out), "2001:db8::"); kept < n {
		t.Errorf("%d of %d sticky sources kept after the reload", kept, n)
	}
	c.cleanup()
	return fmt.Sprintf("| %d | %s | %s | %s | %s | %s |", n, ms(loaded), ms(down), ms(record), ms(verify), ms(reload))

}
