package outbound

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/multihome/multihome/lab"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	mhnetns "github.com/multihome/multihome/netns"
	"github.com/prometheus/client_golang/prometheus"
	vnetlink "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ctNamespace makes a throwaway namespace for synthetic conntrack
// entries and returns its name and an open descriptor of it.
func ctNamespace(t testing.TB) (string, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace and its conntrack table)")
	}
	ns := mhnetns.Unique(lab.TestPrefix, "")
	if err := mhnetns.Add(ns); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(mhnetns.Path(ns))
	if err != nil {
		mhnetns.Delete(ns)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		mhnetns.Delete(ns)
	})
	return ns, int(f.Fd())
}

// appendNested appends a nested attribute whose content fill appends.
func appendNested(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = fill(b)
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ|nlaFNested)
	return b
}

func appendTuple(b []byte, typ uint16, src, dst [4]byte, proto uint8, sport, dport uint16) []byte {
	return appendNested(b, typ, func(b []byte) []byte {
		b = appendNested(b, ctaTupleIP, func(b []byte) []byte {
			b = appendAttr(b, ctaIPv4Src, src[:])
			return appendAttr(b, ctaIPv4Dst, dst[:])
		})
		return appendNested(b, ctaTupleProto, func(b []byte) []byte {
			b = appendAttr(b, ctaProtoNum, []byte{proto})
			b = appendAttr(b, ctaProtoSport, binary.BigEndian.AppendUint16(nil, sport))
			return appendAttr(b, ctaProtoDport, binary.BigEndian.AppendUint16(nil, dport))
		})
	})
}

// synthFlows creates n conntrack entries with mark in the namespace nsFD
// refers to, in batches: IPv4 flows from 192.0.2.1-254 (source port
// varying) to 203.0.113.<group>:dport, proto (6 or 17), timeout one
// hour. group keeps the tuples of separate calls apart.
func synthFlows(t testing.TB, nsFD int, n int, mark uint32, group byte, proto uint8, dport uint16) {
	t.Helper()
	synthFlowsFrom(t, nsFD, func(k int) [4]byte { return [4]byte{192, 0, 2, byte(1 + k/60000)} }, n, mark, group, proto, dport)
}

// synthFlowsFrom is synthFlows with the k-th flow's source address src(k).
func synthFlowsFrom(t testing.TB, nsFD int, srcOf func(k int) [4]byte, n int, mark uint32, group byte, proto uint8, dport uint16) {
	t.Helper()
	c, err := dialCT(nsFD)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := newBatch(c)
	dst := [4]byte{203, 0, 113, group}
	for k := range n {
		src := srcOf(k)
		sport := uint16(1024 + k%60000)
		start := b.begin(ctMsgNew, unix.NLM_F_CREATE|unix.NLM_F_EXCL, unix.AF_INET)
		b.b = appendTuple(b.b, ctaTupleOrig, src, dst, proto, sport, dport)
		b.b = appendTuple(b.b, ctaTupleReply, dst, src, proto, dport, sport)
		b.b = appendU32BE(b.b, ctaTimeout, 3600)
		b.b = appendU32BE(b.b, ctaMark, mark)
		if err := b.end(start); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.send(); err != nil {
		t.Fatal(err)
	}
	if b.ok != n {
		t.Fatalf("created %d of %d synthetic conntrack entries: failures %v", b.ok, n, b.failed)
	}
}

// ctController is a controller for links a, b, c over the conntrack
// table of namespace ns (nothing is applied: Run is not called).
func ctController(t testing.TB, ns string) *Controller {
	t.Helper()
	cfg, err := config.Parse("ct.yaml", []byte(`links:
  - {name: a, interface: wa, gateway4: 198.51.100.1}
  - {name: b, interface: wb, gateway4: 198.51.100.5}
  - {name: c, interface: wc, gateway4: 198.51.100.9}
outbound:
  rules:
    - {name: dns, proto: udp, dport: 53, policy: default, migrate_on_recovery: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, newFakeSource(cfg, monitor.Up), slog.New(slog.DiscardHandler), WithNetns(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// gatherBytes returns the bytes and objects one scrape of cols allocates.
func gatherBytes(t testing.TB, reg *prometheus.Registry) (bytes, allocs uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// TestConntrackScale: with a few thousand synthetic entries, the
// background count is right and streams (its allocations do not grow
// with the table), a scrape costs O(links), a link's flush removes
// exactly its entries in one kernel-side request, and a migration
// deletes exactly the rule's entries in batches.
func TestConntrackScale(t *testing.T) {
	ns, fd := ctNamespace(t)
	c := ctController(t, ns)
	s := c.view.Load().scheme
	const na, nb, nother = 3000, 2000, 500
	synthFlows(t, fd, na, s.Mark(0), 1, 17, 53)
	synthFlows(t, fd, 500, s.Mark(0)|0x5, 2, 6, 443) // other mark bits kept: still a's
	synthFlows(t, fd, nb, s.Mark(1), 3, 17, 53)
	synthFlows(t, fd, 700, s.Mark(1), 4, 6, 443)
	synthFlows(t, fd, nother, 0, 5, 17, 53) // LAN flows: no link

	reg := prometheus.NewRegistry()
	reg.MustRegister(flowCollector{c})
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("metrics before the first count: %v", mfs)
	}
	want := map[string]int{"a": na + 500, "b": nb + 700, "c": 0}
	check := func(when string, want map[string]int, total int) {
		t.Helper()
		if _, err := c.countNow(); err != nil {
			t.Fatal(err)
		}
		got, at, ok := c.FlowCounts()
		if !ok || time.Since(at) > time.Minute {
			t.Fatalf("%s: no fresh count (%v, %v)", when, ok, at)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: counts %v, want %v", when, got, want)
		}
		if n := c.flows.Load().counts[3]; n != total {
			t.Fatalf("%s: %d entries counted, want %d", when, n, total)
		}
	}
	check("start", want, na+500+nb+700+nother)

	// The count streams: its allocations do not depend on the 6700
	// entries (a []Flow dump makes ~20 allocations per entry).
	counts := make([]int, 4)
	a := testing.AllocsPerRun(3, func() { c.ct.count(s.LinkOf, counts) })
	t.Logf("one count of %d entries: %.0f allocations", counts[3], a)
	if a > 40 {
		t.Errorf("one count of %d entries made %.0f allocations, want O(1) (≤ 40)", counts[3], a)
	}
	// A scrape reads the last count: O(links).
	bytes, allocs := gatherBytes(t, reg)
	t.Logf("one scrape: %d bytes in %d allocations", bytes, allocs)
	if bytes > 64<<10 || allocs > 500 {
		t.Errorf("one scrape allocated %d bytes in %d objects, want O(links) (≤ 64 KiB, ≤ 500)", bytes, allocs)
	}
	mfs, _ := reg.Gather()
	var text strings.Builder
	for _, mf := range mfs {
		fmt.Fprintln(&text, mf.String())
	}
	for _, w := range []string{`name:"multihome_outbound_flows"`, `value:"a"`, `value:3500`, `value:2700`, `multihome_outbound_flows_age_seconds`, `multihome_outbound_conntrack_entries`, `value:6700`} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("scrape lacks %s:\n%s", w, text.String())
		}
	}

	// Migration: only b's UDP/53 entries go, in batches.
	r := c.o.Rules[0]
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	n, err := c.ct.deleteMatching(s.Mark(1), c.o.MarkMask, r)
	runtime.ReadMemStats(&m1)
	if err != nil || n != nb {
		t.Fatalf("migration deleted %d entries (%v), want %d", n, err, nb)
	}
	t.Logf("migration of %d of %d entries: %d bytes in %d allocations", n, nb+700, m1.TotalAlloc-m0.TotalAlloc, m1.Mallocs-m0.Mallocs)
	if d := m1.Mallocs - m0.Mallocs; d > 200 {
		t.Errorf("migrating %d entries made %d allocations, want O(1) (≤ 200)", n, d)
	}
	check("after migrating b's DNS flows", map[string]int{"a": na + 500, "b": 700, "c": 0}, na+500+700+nother)

	// Flushing a: exactly its entries (any other mark bits), in one
	// request whose allocations do not depend on the entries.
	runtime.ReadMemStats(&m0)
	n, err = c.ct.flush(s.Mark(0), c.o.MarkMask)
	runtime.ReadMemStats(&m1)
	if err != nil || n != na+500 {
		t.Fatalf("flush of a: %d entries (%v), want %d", n, err, na+500)
	}
	t.Logf("flush of %d entries: %d bytes in %d allocations", n, m1.TotalAlloc-m0.TotalAlloc, m1.Mallocs-m0.Mallocs)
	if d := m1.Mallocs - m0.Mallocs; d > 300 {
		t.Errorf("flushing %d entries made %d allocations, want O(1) (≤ 300)", na+500, d)
	}
	check("after flushing a", map[string]int{"a": 0, "b": 700, "c": 0}, 700+nother)
	n, err = c.ct.flush(s.Mark(2), c.o.MarkMask)
	if err != nil || n != 0 {
		t.Fatalf("flush of c (no flows): %d (%v)", n, err)
	}
}

// TestFlushOffEventPath: a link-down event applies the new ruleset and
// returns with the flush only queued (the conntrack worker does it), so a
// second event is handled at once whatever the size of the table; the
// worker then removes exactly that link's entries, and a flush cancelled
// by the link's return removes nothing.
func TestFlushOffEventPath(t *testing.T) {
	ns, fd := ctNamespace(t)
	h, err := mhnetns.Handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i, name := range []string{"wa", "wb"} {
		if err := h.LinkAdd(&vnetlink.Veth{LinkAttrs: vnetlink.LinkAttrs{Name: name}, PeerName: "p" + name}); err != nil {
			t.Fatal(err)
		}
		lk, _ := h.LinkByName(name)
		addr, _ := vnetlink.ParseAddr(fmt.Sprintf("198.51.100.%d/30", 4*i+2))
		h.AddrAdd(lk, addr)
		h.LinkSetUp(lk)
		if p, err := h.LinkByName("p" + name); err == nil {
			h.LinkSetUp(p)
		}
	}
	cfg, err := config.Parse("ct.yaml", []byte(`links:
  - {name: a, interface: wa, gateway4: 198.51.100.1}
  - {name: b, interface: wb, gateway4: 198.51.100.5}
outbound:
  policies:
    - {name: main, type: failover}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := appliedController(t, cfg, ns)
	defer c.close()
	defer c.cleanup()
	ctx := context.Background()
	s := c.view.Load().scheme
	synthFlows(t, fd, 5000, s.Mark(0), 1, 17, 53)
	synthFlows(t, fd, 3000, s.Mark(1), 2, 17, 53)
	event := func(link string, st monitor.State) monitor.Event {
		now := c.status[link]
		from := now.State
		now.State, now.Health = st, st
		return monitor.Event{Time: time.Now(), Kind: monitor.StateChanged, Link: link, From: from, To: st, Status: now}
	}
	counts := func() []int {
		t.Helper()
		n := make([]int, 3)
		if err := c.ct.count(s.LinkOf, n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Down, then back before the worker ran: the flush is cancelled.
	c.onEvent(ctx, event("a", monitor.Down))
	if len(c.ctJobs) != 1 {
		t.Fatalf("%d conntrack jobs queued after a's down event, want 1", len(c.ctJobs))
	}
	if n := counts(); n[0] != 5000 {
		t.Fatalf("a's entries %d right after its down event: the flush ran on the event path", n[0])
	}
	c.onEvent(ctx, event("a", monitor.Up))
	j := <-c.ctJobs
	if err := j.run(); err != nil {
		t.Fatal(err)
	}
	c.onFlushed(ctResult{link: j.link, flag: j.flag})
	if n := counts(); n[0] != 5000 || n[1] != 3000 {
		t.Fatalf("entries %v after a cancelled flush, want a 5000, b 3000", n)
	}

	// Down for good: queued, then the worker removes exactly a's.
	c.onEvent(ctx, event("a", monitor.Down))
	c.onEvent(ctx, event("b", monitor.Degraded)) // handled at once
	if got := c.status["b"].State; got != monitor.Degraded {
		t.Fatalf("second event not handled: b is %v", got)
	}
	if n := counts(); n[0] != 5000 || len(c.ctJobs) != 1 {
		t.Fatalf("after the events: a has %d entries, %d jobs queued; want 5000 and 1", n[0], len(c.ctJobs))
	}
	j = <-c.ctJobs
	if err := j.run(); err != nil {
		t.Fatal(err)
	}
	c.onFlushed(ctResult{link: j.link, flag: j.flag})
	if n := counts(); n[0] != 0 || n[1] != 3000 {
		t.Fatalf("entries %v after a's flush, want a 0, b 3000", n)
	}
	if len(c.flushing) != 0 || len(c.pending) != 0 {
		t.Fatalf("flushing %v pending %v after the flush", c.flushing, c.pending)
	}
}
