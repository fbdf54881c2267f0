package dns

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/monitor"
)

// nameConfig is baseLinks plus a zone with one steered name "www" whose
// settings are given as YAML flow-mapping fields (policy, all_down...).
func nameConfig(fields string) string {
	return baseLinks + `  - {name: isp3, interface: wan3, gateway4: 198.51.100.33, priority: 2, weight: 1}
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
        - {name: www, ttl: 60s, min_ttl: 5s, ` + fields + `, records: [
            {link: isp1, a: 198.51.100.2, aaaa: "2001:db8:1::2"},
            {link: isp2, a: 198.51.100.18},
            {link: isp3, a: 198.51.100.34}]}
`
}

const (
	a1 = "198.51.100.2"
	a2 = "198.51.100.18"
	a3 = "198.51.100.34"
)

func join(a ...string) string { sortStrings(a); return strings.Join(a, ",") }

// waitAnswer polls www A until its sorted addresses are want.
func (ts *testServer) waitAnswer(t *testing.T, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := sortedAddrs(ts.query(t, "www.example.com.", mdns.TypeA))
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("www A = %q, want %q", got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLinkDownRemovesAddress(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, nameConfig("policy: all")), src, nil)
	ts.waitAnswer(t, join(a1, a2, a3))

	start := time.Now()
	src.state("isp1", monitor.Down)
	d := ts.waitAnswer(t, join(a2, a3))
	t.Logf("address withdrawn %v after the event", time.Since(start))
	if d > 100*time.Millisecond {
		t.Errorf("took %v to withdraw the address", d)
	}
	// AAAA was only on isp1: NODATA while A is still answered.
	if r := ts.query(t, "www.example.com.", mdns.TypeAAAA); r.Rcode != 0 || len(r.Answer) != 0 {
		t.Errorf("AAAA with its only link down: %v", r)
	}
	// Hold-down keeps it out; back after.
	src.set("isp1", func(s *monitor.Status) { s.HoldDown = true })
	ts.waitAnswer(t, join(a2, a3))
	src.set("isp1", func(s *monitor.Status) { s.HoldDown, s.State = false, monitor.Up })
	ts.waitAnswer(t, join(a1, a2, a3))
	// Drain and admin down take the link out of DNS too.
	src.set("isp2", func(s *monitor.Status) { s.Admin = monitor.AdminDrain })
	ts.waitAnswer(t, join(a1, a3))
	src.set("isp2", func(s *monitor.Status) { s.Admin = monitor.AdminNone })
	ts.waitAnswer(t, join(a1, a2, a3))
}

func TestRotation(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, nameConfig("policy: all")), src, nil)
	first := map[string]int{}
	for range 30 {
		first[addrs(ts.query(t, "www.example.com.", mdns.TypeA))[0]]++
	}
	if len(first) != 3 {
		t.Errorf("first address over 30 answers: %v, want all three rotated", first)
	}
}

func TestDemotion(t *testing.T) {
	for _, c := range []struct {
		fields string
		mod    func(src *fakeSource)
		want   string
	}{
		{"saturated: demote", func(s *fakeSource) { s.set("isp1", sat) }, join(a2, a3)},
		{"saturated: demote", func(s *fakeSource) { s.set("isp1", sat); s.set("isp2", sat); s.set("isp3", sat) }, join(a1, a2, a3)},
		{"saturated: demote", func(s *fakeSource) { s.set("isp1", sat); s.state("isp2", monitor.Down); s.state("isp3", monitor.Down) }, a1},
		{"saturated: keep", func(s *fakeSource) { s.set("isp1", sat) }, join(a1, a2, a3)},
		{"saturated: remove", func(s *fakeSource) { s.set("isp1", sat) }, join(a2, a3)},
		{"saturated: remove, all_down: servfail", func(s *fakeSource) { s.set("isp1", sat); s.state("isp2", monitor.Down); s.state("isp3", monitor.Down) }, "SERVFAIL"},
		{"degraded: demote", func(s *fakeSource) { s.state("isp2", monitor.Degraded) }, join(a1, a3)},
		{"degraded: keep", func(s *fakeSource) { s.state("isp2", monitor.Degraded) }, join(a1, a2, a3)},
		{"degraded: remove", func(s *fakeSource) { s.state("isp2", monitor.Degraded) }, join(a1, a3)},
		{"degraded: demote", func(s *fakeSource) {
			s.state("isp1", monitor.Degraded)
			s.state("isp2", monitor.Down)
			s.state("isp3", monitor.Down)
		}, a1},
	} {
		t.Run(c.fields, func(t *testing.T) {
			src := newFakeSource("isp1", "isp2", "isp3")
			ts := startServer(t, parseConfig(t, nameConfig(c.fields)), src, nil)
			c.mod(src)
			if c.want == "SERVFAIL" {
				eventually(t, 2*time.Second, "SERVFAIL", func() bool { return ts.query(t, "www.example.com.", mdns.TypeA).Rcode == mdns.RcodeServerFailure })
				return
			}
			ts.waitAnswer(t, c.want)
		})
	}
}

func sat(s *monitor.Status) { s.Saturated, s.UtilDown = true, 0.97 }

func TestAllDown(t *testing.T) {
	allDown := func(s *fakeSource) {
		s.state("isp1", monitor.Down)
		s.state("isp2", monitor.Down)
		s.state("isp3", monitor.Down)
	}
	t.Run("all", func(t *testing.T) {
		src := newFakeSource("isp1", "isp2", "isp3")
		ts := startServer(t, parseConfig(t, nameConfig("all_down: all")), src, nil)
		allDown(src)
		eventually(t, 2*time.Second, "all-down", func() bool { return ts.dyn("www.example.com.").allDown })
		r := ts.query(t, "www.example.com.", mdns.TypeA)
		if got := sortedAddrs(r); got != join(a1, a2, a3) {
			t.Errorf("all down, all: %s", got)
		}
		if r.Answer[0].Header().Ttl != 5 {
			t.Errorf("TTL %d while all down, want min_ttl 5", r.Answer[0].Header().Ttl)
		}
	})
	t.Run("last_good", func(t *testing.T) {
		src := newFakeSource("isp1", "isp2", "isp3")
		ts := startServer(t, parseConfig(t, nameConfig("all_down: last_good")), src, nil)
		src.state("isp1", monitor.Down)
		src.state("isp3", monitor.Down)
		ts.waitAnswer(t, a2)
		src.state("isp2", monitor.Down)
		eventually(t, 2*time.Second, "all-down", func() bool { return ts.dyn("www.example.com.").allDown })
		if got := sortedAddrs(ts.query(t, "www.example.com.", mdns.TypeA)); got != a2 {
			t.Errorf("all down, last_good: %s, want %s", got, a2)
		}
		src.state("isp3", monitor.Up)
		ts.waitAnswer(t, a3)
	})
	t.Run("servfail", func(t *testing.T) {
		src := newFakeSource("isp1", "isp2", "isp3")
		ts := startServer(t, parseConfig(t, nameConfig("all_down: servfail")), src, nil)
		allDown(src)
		eventually(t, 2*time.Second, "SERVFAIL", func() bool { return ts.query(t, "www.example.com.", mdns.TypeA).Rcode == mdns.RcodeServerFailure })
		if r := ts.query(t, "www.example.com.", mdns.TypeAAAA); r.Rcode != mdns.RcodeServerFailure {
			t.Errorf("AAAA: %s", mdns.RcodeToString[r.Rcode])
		}
		// Other names of the zone are not affected.
		if r := ts.query(t, "ns1.example.com.", mdns.TypeA); r.Rcode != 0 || len(r.Answer) != 1 {
			t.Errorf("static name while all down: %v", r)
		}
		src.state("isp2", monitor.Up)
		ts.waitAnswer(t, a2)
		if st := ts.Stats(); st.Names[0].Servfail == 0 {
			t.Errorf("servfail not counted: %+v", st.Names)
		}
	})
}

func TestFailoverAndFirst(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, nameConfig("policy: failover")), src, nil)
	ts.waitAnswer(t, a1)
	src.state("isp1", monitor.Down)
	ts.waitAnswer(t, join(a2, a3)) // both priority 2
	src.state("isp1", monitor.Up)
	ts.waitAnswer(t, a1)

	src2 := newFakeSource("isp1", "isp2", "isp3")
	ts2 := startServer(t, parseConfig(t, nameConfig("policy: first, count: 2")), src2, nil)
	for range 5 {
		if got := strings.Join(addrs(ts2.query(t, "www.example.com.", mdns.TypeA)), ","); got != a1+","+a2 {
			t.Fatalf("first 2: %s, want %s,%s in priority then config order", got, a1, a2)
		}
	}
	src2.state("isp2", monitor.Down)
	ts2.waitAnswer(t, join(a1, a3))
}

func TestWeighted(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	src.state("isp3", monitor.Down)
	ts := startServer(t, parseConfig(t, nameConfig("policy: weighted")), src, nil)
	share := func() float64 {
		const n = 2000
		hits := 0
		for range n {
			r := ts.query(t, "www.example.com.", mdns.TypeA)
			if len(r.Answer) != 1 {
				t.Fatalf("weighted, count 1: %d answers", len(r.Answer))
			}
			if addrs(r)[0] == a1 {
				hits++
			}
		}
		return float64(hits) / n
	}
	// isp1 weight 3, isp2 weight 1, both idle: 3/4 of the answers.
	if got := share(); math.Abs(got-0.75) > 0.05 {
		t.Errorf("isp1 share %.3f, want 0.75 (weight 3:1)", got)
	}
	// isp1 half used: 3 × 0.5 = 1.5 against 1 × 1: 0.6.
	src.set("isp1", func(s *monitor.Status) { s.UtilDown = 0.5 })
	eventually(t, 2*time.Second, "weights follow spare capacity", func() bool {
		c := ts.dyn("www.example.com.").set(famA).cum
		return len(c) == 2 && math.Abs(c[0]/c[1]-0.6) < 1e-9
	})
	if got := share(); math.Abs(got-0.6) > 0.05 {
		t.Errorf("isp1 share %.3f, want 0.6 (3 × 50%% spare : 1 × 100%%)", got)
	}
	// count 2 gives both, in weighted order.
	src2 := newFakeSource("isp1", "isp2", "isp3")
	ts2 := startServer(t, parseConfig(t, nameConfig("policy: weighted, count: 2")), src2, nil)
	for range 20 {
		r := ts2.query(t, "www.example.com.", mdns.TypeA)
		if a := addrs(r); len(a) != 2 || a[0] == a[1] {
			t.Fatalf("weighted count 2: %v", a)
		}
	}
}

// dyn returns the current view of a steered name.
func (ts *testServer) dyn(name string) *dynView {
	for _, zv := range ts.view.Load().all {
		for _, n := range zv.z.names {
			if n.name == name {
				return zv.dynOf(n)
			}
		}
	}
	return nil
}

func TestTTL(t *testing.T) {
	src := newFakeSource("isp1", "isp2", "isp3")
	ts := startServer(t, parseConfig(t, nameConfig("policy: all")), src, nil)
	ttl := func() uint32 {
		r := ts.query(t, "www.example.com.", mdns.TypeA)
		if len(r.Answer) == 0 {
			t.Fatalf("no answer: %v", r)
		}
		return r.Answer[0].Header().Ttl
	}
	// Links stable for an hour: the configured TTL.
	if got := ttl(); got != 60 {
		t.Errorf("stable TTL %d, want 60", got)
	}
	src.state("isp2", monitor.Down)
	ts.waitAnswer(t, join(a1, a3))
	if got := ttl(); got != 5 {
		t.Errorf("TTL right after a change %d, want min_ttl 5", got)
	}
	ts.clk.advance(20 * time.Second)
	if got := ttl(); got != 20 {
		t.Errorf("TTL 20s after a change %d, want 20", got)
	}
	ts.clk.advance(time.Minute)
	if got := ttl(); got != 60 {
		t.Errorf("TTL long after a change %d, want 60", got)
	}
	// A link in hold-down is about to come back: min_ttl.
	src.set("isp2", func(s *monitor.Status) { s.HoldDown = true })
	eventually(t, 2*time.Second, "hold-down seen", func() bool { return ts.dyn("www.example.com.").holdDown })
	if got := ttl(); got != 5 {
		t.Errorf("TTL during hold-down %d, want 5", got)
	}
}

func TestSerialAndNotify(t *testing.T) {
	naddr, got := notifyListener(t)
	y := strings.Replace(baseLinks+baseDNS, "transfer: {allow: [127.0.0.2/32]}",
		fmt.Sprintf("transfer: {allow: [127.0.0.2/32], notify: [%q]}", naddr.String()), 1)
	src := newFakeSource("isp1", "isp2")
	ts := startServer(t, parseConfig(t, y), src, nil)
	serial := func() uint32 {
		r := ts.query(t, "example.com.", mdns.TypeSOA)
		return r.Answer[0].(*mdns.SOA).Serial
	}
	waitNotify := func(want uint32) {
		t.Helper()
		deadline := time.After(3 * time.Second)
		for {
			select {
			case m := <-got:
				if m.Opcode != mdns.OpcodeNotify || m.Question[0].Name != "example.com." || m.Question[0].Qtype != mdns.TypeSOA {
					t.Fatalf("not a NOTIFY for example.com.: %v", m)
				}
				if len(m.Answer) == 1 && m.Answer[0].(*mdns.SOA).Serial == want {
					return
				}
			case <-deadline:
				t.Fatalf("no NOTIFY with serial %d", want)
			}
		}
	}
	s0 := serial()
	waitNotify(s0) // sent at start
	src.state("isp1", monitor.Down)
	var s1 uint32
	eventually(t, 2*time.Second, "serial bumped", func() bool { s1 = serial(); return s1 != s0 })
	if !serialGreater(s1, s0) {
		t.Errorf("serial went from %d to %d", s0, s1)
	}
	waitNotify(s1)
	// A change that does not change any answer does not bump the serial.
	src.set("isp1", func(s *monitor.Status) { s.UtilDown = 0.3 })
	time.Sleep(50 * time.Millisecond)
	if s := serial(); s != s1 {
		t.Errorf("serial bumped to %d without a change of content", s)
	}
	// The listener sees a NOTIFY before its reply reaches the server,
	// which counts the NOTIFY as acknowledged only then.
	eventually(t, 2*time.Second, "2 notifies acknowledged", func() bool { return ts.Stats().NotifySent >= 2 })
	if st := ts.Stats(); st.SerialBumps != 1 {
		t.Errorf("stats: %d notifies acknowledged, %d bumps", st.NotifySent, st.SerialBumps)
	}
}
