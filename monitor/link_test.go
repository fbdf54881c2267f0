package monitor

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/probe"
)

// sim drives one linkState with a fake clock and synthetic probe results:
// one probe per slot, targets in turn, as the probe loop sends them.
type sim struct {
	t   *testing.T
	l   *linkState
	now time.Time
	k   int // next slot
	log []decision
	// rx, when set, is the interface's received-bytes counter at a given
	// time: it is read as each result comes in, as the monitor does.
	rx func(time.Time) uint64
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func testConfig(n int, h config.Health) *config.Config {
	targets := []string{"203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14"}
	l := config.Link{Name: "wan1", Interface: "wan1", Health: h}
	for i := range n {
		l.Probes = append(l.Probes, config.Probe{Type: config.ProbeICMP, Target: targets[i]})
	}
	return &config.Config{Links: []config.Link{l}}
}

func newSim(t *testing.T, n int, h config.Health) *sim {
	cfg := testConfig(n, h)
	return &sim{t: t, l: newLinkState(cfg, cfg.Links[0], t0), now: t0}
}

// step runs one slot: the probe of target k%n succeeds with rtt, or fails
// with err.
func (s *sim) step(rtt time.Duration, err error) {
	s.t.Helper()
	i := s.k % len(s.l.targets)
	s.k++
	sent := s.now
	at := sent.Add(rtt)
	if err != nil {
		at = sent.Add(s.l.timeout(i))
	}
	if s.rx != nil {
		s.l.rxAdd(at, s.rx(at))
	}
	s.l.result(probeResult{target: i, sent: sent, at: at, rtt: rtt, err: err})
	s.now = s.now.Add(s.l.slot())
	s.l.tick(s.now)
	s.drain()
}

func (s *sim) drain() {
	for _, d := range s.l.out {
		s.log = append(s.log, d)
	}
	s.l.out = nil
}

func (s *sim) ok()   { s.step(10*time.Millisecond, nil) }
func (s *sim) fail() { s.step(0, probe.ErrTimeout) }

// run runs n slots, failing those for which fail(slot, target) is true.
func (s *sim) run(n int, fail func(k, target int) bool) {
	for range n {
		if fail(s.k, s.k%len(s.l.targets)) {
			s.fail()
		} else {
			s.ok()
		}
	}
}

// published returns the published decisions of kind k since index from.
func (s *sim) published(from int, k Kind) []decision {
	var out []decision
	for _, d := range s.log[from:] {
		if d.publish && d.kind == k {
			out = append(out, d)
		}
	}
	return out
}

func (s *sim) wantState(want State) {
	s.t.Helper()
	if got := s.l.state(); got != want {
		s.t.Fatalf("slot %d: state %v, want %v (reason %q)", s.k, got, want, s.l.reason)
	}
}

func never(int, int) bool  { return false }
func always(int, int) bool { return true }

func TestUnknownToUpAndDown(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.wantState(Unknown)
	s.ok()
	s.wantState(Up)
	if !strings.Contains(s.l.reason, "1/3 targets answering (quorum 1)") {
		t.Errorf("reason %q", s.l.reason)
	}

	s = newSim(t, 3, config.Health{})
	s.fail()
	s.fail()
	s.wantState(Unknown)
	s.fail()
	s.wantState(Down)
	if !strings.Contains(s.l.reason, "3 consecutive failed probes, 0/3 targets answering (quorum 1), last error: timeout") {
		t.Errorf("reason %q", s.l.reason)
	}
}

func TestBlackholeAndRecovery(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(300, never)
	s.wantState(Up)
	// Blackhole: down after exactly DownAfter failed slots.
	s.fail()
	s.fail()
	s.wantState(Up)
	s.fail()
	s.wantState(Down)
	downs := s.published(0, StateChanged)
	if len(downs) != 2 || downs[1].from != Up || downs[1].to != Down {
		t.Fatalf("events %+v", downs)
	}
	s.run(50, always)
	s.wantState(Down)

	// Recovery: UpAfter successes start the hold-down, State stays Down.
	mark := len(s.log)
	s.run(4, never)
	if s.l.holdDown {
		t.Fatal("hold-down after 4 successes")
	}
	s.ok()
	if !s.l.holdDown || s.l.state() != Down || !s.l.status().HoldDown {
		t.Fatalf("after 5 successes: holdDown=%v state=%v", s.l.holdDown, s.l.state())
	}
	if hd := s.published(mark, HoldDownStarted); len(hd) != 1 || !strings.Contains(hd[0].reason, "5 successful probes") {
		t.Fatalf("hold-down events %+v", hd)
	}
	holdStart := s.now
	// A failure during hold-down restarts the count (clean link: any
	// failure does).
	s.run(10, never)
	s.fail()
	if s.l.holdDown || s.l.up != 0 {
		t.Fatalf("failure during hold-down: holdDown=%v up=%d", s.l.holdDown, s.l.up)
	}
	s.wantState(Down)
	// Then a clean recovery.
	s.run(5, never)
	if !s.l.holdDown {
		t.Fatal("no second hold-down")
	}
	hd := s.published(0, HoldDownStarted)
	holdStart = hd[len(hd)-1].at
	for s.l.state() == Down {
		s.ok()
		if s.now.Sub(holdStart) > 3*time.Second {
			t.Fatal("hold-down never ended")
		}
	}
	s.wantState(Up)
	if d := s.now.Sub(holdStart); d < 2*time.Second {
		t.Errorf("up after %v, before the 2s hold-down", d)
	}
	if !strings.Contains(s.l.reason, "hold-down of 2s passed") {
		t.Errorf("reason %q", s.l.reason)
	}
	// The outage is not counted as loss of the working link: only the
	// failure during the hold-down is.
	if q := s.l.win.quality(true); q.loss*float64(q.n) > 1.01 {
		t.Errorf("loss after recovery = %v of %d, want 1 failure (outage excluded)", q.loss, q.n)
	}
}

func TestHoldDownZero(t *testing.T) {
	s := newSim(t, 1, config.Health{HoldDown: config.Duration(time.Nanosecond)})
	s.l.s.holdDown = 0
	s.ok()
	s.run(3, always)
	s.wantState(Down)
	s.run(5, never)
	s.wantState(Up)
}

func TestQuorumOneDeadTarget(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	// Target 2 never answers: with quorum 1 the link stays up and clean.
	s.run(2000, func(_, target int) bool { return target == 2 })
	s.wantState(Up)
	if n := len(s.published(0, StateChanged)); n != 1 {
		t.Errorf("%d state changes, want 1 (unknown→up)", n)
	}
	st := s.l.status()
	if st.TargetsUp != 2 || st.Targets[2].Up || st.Targets[2].Loss != 1 || st.Loss != 0 {
		t.Errorf("status: up %d, target 2 %+v, link loss %v", st.TargetsUp, st.Targets[2], st.Loss)
	}
	// The dead target does not count as background loss: a blackhole is
	// still caught in DownAfter live-target failures.
	if r := s.l.hist.rate(-1); r != 0 {
		t.Errorf("background failure rate %v, want 0", r)
	}
	for s.k%3 != 0 {
		s.ok()
	}
	n := 0
	for s.l.state() != Down {
		s.fail()
		n++
	}
	if n > 4 { // 3 live failures, plus the dead target's slot in between
		t.Errorf("blackhole took %d slots", n)
	}
}

func TestQuorumTwo(t *testing.T) {
	s := newSim(t, 3, config.Health{MinTargetsUp: 2})
	s.run(30, never)
	s.wantState(Up)
	// Two of three targets die: fewer than 2 answering.
	s.run(20, func(_, target int) bool { return target != 0 })
	s.wantState(Down)
	if !strings.Contains(s.l.reason, "1/3 targets answering (quorum 2)") {
		t.Errorf("reason %q", s.l.reason)
	}
	// One comes back: quorum met again, recovery runs its course.
	s.run(100, func(_, target int) bool { return target == 2 })
	s.wantState(Up)
}

func TestStreakNeeded(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want int
	}{
		{0, 3}, {0.01, 3}, {0.02, 4}, {0.05, 5}, {0.1, 6}, {0.2, 9}, {0.3, 12}, {0.5, 20}, {0.9, 132}, {0.99, 150}, {1, 150},
	} {
		if got := streakNeeded(tc.p, falseDownP, 3, 150); got != tc.want {
			t.Errorf("streakNeeded(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
	for _, tc := range []struct {
		p    float64
		want int
	}{{0, 1}, {0.05, 2}, {0.1, 2}, {0.3, 4}} {
		if got := streakNeeded(tc.p, recoverP, 1, 150); got != tc.want {
			t.Errorf("reset streakNeeded(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

func TestRandomLossDegradesWithoutFlapping(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := newSim(t, 3, config.Health{})
		s.run(150, never) // a clean start
		mark := len(s.log)
		// 30 % random loss for 10 minutes of probing (9000 slots).
		s.run(9000, func(int, int) bool { return rng.Float64() < 0.30 })
		if s.l.state() != Degraded {
			t.Errorf("seed %d: state %v, want degraded", seed, s.l.state())
		}
		var downs int
		for _, d := range s.published(mark, StateChanged) {
			if d.to == Down {
				downs++
			}
		}
		// The onset of loss right after a clean period may look like a
		// blackhole (3 failures in a row at p̂ = 0): allow that once, no
		// flapping afterwards.
		if downs > 1 {
			t.Errorf("seed %d: %d down transitions under 30%% random loss", seed, downs)
		}
		// Once adapted, a blackhole is still detected, in ~need slots.
		need := s.l.needDown()
		if need < 9 || need > 18 {
			t.Errorf("seed %d: need %d at p̂ %.2f", seed, need, s.l.hist.rate(-1))
		}
		n := 0
		for s.l.state() != Down {
			s.fail()
			n++
			if n > 200 {
				t.Fatalf("seed %d: blackhole on a lossy link not detected", seed)
			}
		}
		if need = s.l.needDown(); n > need+1 {
			t.Errorf("seed %d: blackhole detected after %d slots, need %d", seed, n, need)
		}
	}
}

func TestLossyLinkRecoversAfterFalseDown(t *testing.T) {
	// A lossy link that went down must come back (degraded), even though
	// single failures keep happening during its hold-down.
	rng := rand.New(rand.NewPCG(7, 7))
	s := newSim(t, 3, config.Health{})
	lossy := func(int, int) bool { return rng.Float64() < 0.30 }
	s.run(600, lossy)
	s.run(60, always) // an outage
	s.wantState(Down)
	s.run(600, lossy)
	s.wantState(Degraded)
}

func TestDegradedHysteresis(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(150, never)
	s.wantState(Up)
	// 12 % loss (every 8th slot, below any streak): degraded.
	s.run(600, func(k, _ int) bool { return k%8 == 0 })
	s.wantState(Degraded)
	if !strings.Contains(s.l.reason, "loss 1") || !strings.Contains(s.l.reason, "> 10%") {
		t.Errorf("reason %q", s.l.reason)
	}
	// 7 %: between the thresholds: stays degraded.
	s.run(600, func(k, _ int) bool { return k%14 == 0 })
	s.wantState(Degraded)
	// 2 %: recovered.
	s.run(600, func(k, _ int) bool { return k%50 == 0 })
	s.wantState(Up)
	if !strings.Contains(s.l.reason, "≤ 5%") {
		t.Errorf("reason %q", s.l.reason)
	}
	if n := len(s.published(0, StateChanged)); n != 3 {
		t.Errorf("%d state changes, want 3", n)
	}
}

func TestDegradedRTTAndJitter(t *testing.T) {
	s := newSim(t, 2, config.Health{
		Degraded:  config.Quality{RTT: config.Duration(100 * time.Millisecond), Jitter: config.Duration(20 * time.Millisecond)},
		Recovered: config.Quality{RTT: config.Duration(80 * time.Millisecond), Jitter: config.Duration(10 * time.Millisecond)},
	})
	for range 200 {
		s.step(50*time.Millisecond, nil)
	}
	s.wantState(Up)
	// RTT alternating 50/90 ms per target: jitter 40 ms.
	for i := range 200 {
		rtt := 50 * time.Millisecond
		if (i/2)%2 == 1 {
			rtt = 90 * time.Millisecond
		}
		s.step(rtt, nil)
	}
	s.wantState(Degraded)
	if q := s.l.win.quality(true); q.jitter != 40*time.Millisecond {
		t.Errorf("jitter %v, want 40ms", q.jitter)
	}
	if !strings.Contains(s.l.reason, "jitter 2") || !strings.Contains(s.l.reason, "> 20ms") {
		t.Errorf("reason %q", s.l.reason)
	}
	// Steady 95 ms: jitter 0 but RTT over 80 ms recovered threshold.
	for range 300 {
		s.step(95*time.Millisecond, nil)
	}
	s.wantState(Degraded)
	for range 300 {
		s.step(60*time.Millisecond, nil)
	}
	s.wantState(Up)
}

func TestStatistics(t *testing.T) {
	w := window{d: 10 * time.Second}
	for i := 1; i <= 100; i++ {
		w.add(sample{at: t0.Add(time.Duration(i) * time.Millisecond), rtt: time.Duration(i) * time.Millisecond})
	}
	w.add(sample{at: t0.Add(101 * time.Millisecond), fail: true})
	w.add(sample{at: t0.Add(102 * time.Millisecond), fail: true, silent: true})
	w.add(sample{at: t0.Add(103 * time.Millisecond), fail: true, outage: true})
	q := w.quality(true)
	if q.p50 != 50*time.Millisecond || q.p95 != 95*time.Millisecond {
		t.Errorf("p50 %v p95 %v", q.p50, q.p95)
	}
	if q.n != 101 || q.loss != 1.0/101 {
		t.Errorf("n %d loss %v", q.n, q.loss)
	}
	// Sliding: samples older than the window go.
	w.add(sample{at: t0.Add(10*time.Second + 50*time.Millisecond), rtt: time.Millisecond})
	if q := w.quality(true); q.n != 53 {
		t.Errorf("after sliding n = %d, want 53", q.n)
	}

	var e rttEstimator
	if e.rto(100*time.Millisecond, time.Second) != time.Second {
		t.Error("rto before any sample is not the maximum")
	}
	for range 50 {
		e.add(20 * time.Millisecond)
	}
	if e.srtt != 20*time.Millisecond || e.rto(5*time.Millisecond, time.Second) > 21*time.Millisecond {
		t.Errorf("srtt %v rttvar %v", e.srtt, e.rttvar)
	}
	if e.rto(100*time.Millisecond, time.Second) != 100*time.Millisecond {
		t.Error("rto not clamped to the floor")
	}
	e.add(400 * time.Millisecond)
	if r := e.rto(100*time.Millisecond, time.Second); r < 300*time.Millisecond {
		t.Errorf("rto after a 400ms sample %v", r)
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestTimeoutFromRTT(t *testing.T) {
	s := newSim(t, 1, config.Health{})
	if s.l.timeout(0) != time.Second {
		t.Errorf("initial timeout %v, want MaxTimeout", s.l.timeout(0))
	}
	for range 20 {
		s.step(300*time.Millisecond, nil)
	}
	if to := s.l.timeout(0); to < 300*time.Millisecond || to > 400*time.Millisecond {
		t.Errorf("timeout at 300ms rtt: %v", to)
	}
	for range 50 {
		s.step(time.Millisecond, nil)
	}
	if to := s.l.timeout(0); to != 100*time.Millisecond {
		t.Errorf("timeout at 1ms rtt: %v, want the 100ms floor", to)
	}
	s = newSim(t, 1, config.Health{Timeout: config.Duration(250 * time.Millisecond)})
	if s.l.timeout(0) != 250*time.Millisecond {
		t.Errorf("fixed timeout %v", s.l.timeout(0))
	}
}

func TestStaleFailureDoesNotExtendStreak(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(30, never)
	l := s.l
	base := s.now
	// Probe A sent at base fails (its timeout ends late); probe B sent
	// after it succeeds first. Then two fresh failures: not 3 in a row.
	l.result(probeResult{target: 1, sent: base.Add(10 * time.Millisecond), at: base.Add(11 * time.Millisecond), rtt: time.Millisecond})
	l.result(probeResult{target: 0, sent: base, at: base.Add(100 * time.Millisecond), err: probe.ErrTimeout})
	l.result(probeResult{target: 2, sent: base.Add(20 * time.Millisecond), at: base.Add(120 * time.Millisecond), err: probe.ErrTimeout})
	l.result(probeResult{target: 1, sent: base.Add(30 * time.Millisecond), at: base.Add(130 * time.Millisecond), err: probe.ErrTimeout})
	if l.state() != Up || l.fail != 2 {
		t.Fatalf("state %v, streak %d; want up, 2", l.state(), l.fail)
	}
}

func TestCarrier(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(30, never)
	mark := len(s.log)
	s.l.setCarrier(s.now, false, "carrier lost on wan1")
	s.drain()
	s.wantState(Down)
	ev := s.published(mark, StateChanged)
	if len(ev) != 1 || ev[0].reason != "carrier lost on wan1" {
		t.Fatalf("events %+v", ev)
	}
	// Results while the carrier is down are ignored.
	s.run(20, never)
	s.wantState(Down)
	if s.l.up != 0 {
		t.Errorf("counted %d successes without carrier", s.l.up)
	}
	s.l.setCarrier(s.now, true, "")
	s.drain()
	s.wantState(Down)
	s.run(4, never)
	s.wantState(Down)
	s.ok()
	if !s.l.holdDown {
		t.Fatal("no hold-down after carrier back and 5 successes")
	}
	s.run(40, never)
	s.wantState(Up)
}

// TestOutageEvidence: a verdict from outside the probes (a BFD session
// down) downs the link at once; the probes then bring it back through
// up_after and the hold-down, as after a carrier loss.
func TestOutageEvidence(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(30, never)
	mark := len(s.log)
	s.l.outage(s.now, "BFD session to 198.51.100.1 down")
	s.drain()
	s.wantState(Down)
	if ev := s.published(mark, StateChanged); len(ev) != 1 || ev[0].reason != "BFD session to 198.51.100.1 down" {
		t.Fatalf("events %+v", ev)
	}
	s.run(4, never)
	s.wantState(Down)
	s.ok()
	if !s.l.holdDown {
		t.Fatal("no hold-down after 5 successes")
	}
	s.run(40, never)
	s.wantState(Up)
}

func TestAdmin(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(10, never)
	mark := len(s.log)
	s.l.setAdmin(s.now, AdminDrain, "maintenance")
	s.drain()
	s.wantState(Up)
	if ev := s.published(mark, AdminChanged); len(ev) != 1 || !strings.Contains(ev[0].reason, "drain") || !strings.Contains(ev[0].reason, "maintenance") {
		t.Fatalf("drain events %+v", s.log[mark:])
	}
	if st := s.l.status(); st.Admin != AdminDrain || st.AcceptsNew() || !st.Usable() {
		t.Errorf("drain status %+v", st)
	}
	mark = len(s.log)
	s.l.setAdmin(s.now, AdminDown, "cable swap")
	s.drain()
	s.wantState(Down)
	ev := s.published(mark, StateChanged)
	if len(ev) != 1 || ev[0].reason != "forced down by operator: cable swap" || ev[0].from != Up || ev[0].to != Down {
		t.Fatalf("down events %+v", ev)
	}
	if st := s.l.status(); st.Health != Up || st.State != Down {
		t.Errorf("status health %v state %v", st.Health, st.State)
	}
	// Health changes under the override are not published.
	mark = len(s.log)
	s.run(5, always)
	if len(s.published(mark, StateChanged)) != 0 || s.l.health != Down {
		t.Errorf("health %v, events %+v", s.l.health, s.log[mark:])
	}
	s.run(10, never)
	s.l.setAdmin(s.now, AdminNone, "")
	s.drain()
	s.wantState(Down) // health is down, recovering: nothing to publish as a state change
	s.run(100, never)
	s.wantState(Up)
}

func TestSaturation(t *testing.T) {
	cfg := testConfig(1, config.Health{})
	cfg.Links[0].Capacity = config.Capacity{Down: 10_000_000, Up: 2_000_000}
	l := newLinkState(cfg, cfg.Links[0], t0)
	var rx, tx uint64
	now := t0
	step := func(downBps, upBps uint64) {
		now = now.Add(250 * time.Millisecond)
		rx += downBps / 8 / 4
		tx += upBps / 8 / 4
		l.counters(now, rx, tx)
	}
	step(0, 0)
	for range 20 {
		step(5_000_000, 100_000)
	}
	if l.sat.saturated || l.sat.rateDown != 5_000_000 || l.sat.utilDown != 0.5 {
		t.Fatalf("half load: %+v", l.sat)
	}
	// Upload at 95 %: saturated after 2 s.
	for i := range 7 {
		step(1_000_000, 1_900_000)
		if l.sat.saturated {
			t.Fatalf("saturated after %d samples", i+1)
		}
	}
	step(1_000_000, 1_900_000)
	if !l.sat.saturated {
		t.Fatalf("not saturated after 2s at 95%%: %+v", l.sat)
	}
	if len(l.out) != 1 || l.out[0].kind != SaturationChanged || !strings.Contains(l.out[0].reason, "up 1.9Mbit/s of 2Mbit/s (95%)") {
		t.Fatalf("events %+v", l.out)
	}
	l.out = nil
	// 80 %: between clear and threshold: stays saturated.
	for range 20 {
		step(1_000_000, 1_600_000)
	}
	if !l.sat.saturated {
		t.Fatal("cleared at 80%")
	}
	for range 7 {
		step(0, 1_000_000)
	}
	if !l.sat.saturated {
		t.Fatal("cleared before 2s under 75%")
	}
	step(0, 1_000_000)
	if l.sat.saturated || len(l.out) != 1 {
		t.Fatalf("not cleared: %+v", l.sat)
	}
	// Unknown capacity: never saturated, utilisation 0.
	cfg.Links[0].Capacity = config.Capacity{}
	l = newLinkState(cfg, cfg.Links[0], t0)
	rx, tx = 0, 0
	for range 40 {
		step(1e9, 1e9)
	}
	if l.sat.saturated || l.sat.utilDown != 0 || l.sat.rateDown != 1e9 {
		t.Errorf("no capacity: %+v", l.sat)
	}
}

func TestErrString(t *testing.T) {
	if errString(probe.ErrTimeout) != "timeout" || errString(errors.New("connection refused")) != "connection refused" {
		t.Error("errString")
	}
}

func TestLateOutageFailure(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(60, never)
	s.run(10, always)
	s.wantState(Down)
	l := s.l
	base := s.now
	// Recovery: a probe sent after the repair succeeds; a probe sent just
	// before it, into the blackhole, times out afterwards.
	l.result(probeResult{target: 0, sent: base, at: base.Add(time.Millisecond), rtt: time.Millisecond})
	l.result(probeResult{target: 2, sent: base.Add(-30 * time.Millisecond), at: base.Add(70 * time.Millisecond), err: probe.ErrTimeout})
	if r := l.background(); r != 0 {
		t.Errorf("background loss %v after a late outage failure, want 0", r)
	}
	if q := l.win.quality(true); q.loss != 0 {
		t.Errorf("window loss %v, want 0", q.loss)
	}
}

// TestHold: a hold downs the link at once and keeps it down however long
// the probes succeed; a second source's hold outlives the first's
// release; after the last release the probes must prove the link (up_after
// successes, then the hold-down).
func TestHold(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(30, never)
	s.wantState(Up)
	mark := len(s.log)
	s.l.setHold(s.now, "bgp 198.51.100.1 default", "no default route", true)
	s.l.setHold(s.now, "bgp 198.51.100.1 default", "no default route", true) // idempotent
	s.drain()
	s.wantState(Down)
	if ev := s.published(mark, StateChanged); len(ev) != 1 || ev[0].reason != "no default route" {
		t.Fatalf("events %+v", ev)
	}
	s.l.setHold(s.now, "other", "second verdict", true)
	s.run(100, never) // 100 successful probes change nothing
	s.wantState(Down)
	if s.l.up != 0 || s.l.holdDown {
		t.Fatalf("counted successes while held: up=%d holdDown=%v", s.l.up, s.l.holdDown)
	}
	if got := s.l.status().Holds; len(got) != 2 || got[0] != "bgp 198.51.100.1 default: no default route" {
		t.Fatalf("status holds %q", got)
	}
	s.l.setHold(s.now, "bgp 198.51.100.1 default", "", false)
	s.run(40, never)
	s.wantState(Down)                       // "other" still holds it
	s.l.setHold(s.now, "nobody", "", false) // releasing what is not held is a no-op
	s.l.setHold(s.now, "other", "", false)
	if len(s.l.status().Holds) != 0 {
		t.Fatalf("holds left: %q", s.l.status().Holds)
	}
	s.run(4, never)
	s.wantState(Down)
	s.ok()
	if !s.l.holdDown {
		t.Fatal("no hold-down after the release and 5 successes")
	}
	s.run(40, never)
	s.wantState(Up)
}

// TestCongestionIsNotDegradation: a link filled to its capacity by the
// site's own traffic loses probes in the queue; with its capacity known
// that loss is the queue's and the link stays up (saturated), and the
// status still shows it. The same loss with no capacity configured, or on
// a link below its saturation threshold, makes it degraded.
func TestCongestionIsNotDegradation(t *testing.T) {
	lossy := func(k, _ int) bool { return k%8 == 0 } // 12.5 %
	for _, tc := range []struct {
		name     string
		capacity config.Capacity
		rate     uint64 // received bits/s
		want     State
	}{
		{"at capacity", config.Capacity{Down: 20_000_000, Up: 20_000_000}, 19_500_000, Up},
		{"no capacity", config.Capacity{}, 19_500_000, Degraded},
		{"half capacity", config.Capacity{Down: 40_000_000, Up: 40_000_000}, 19_500_000, Degraded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 3, config.Health{})
			s.l.s.capDown, s.l.s.capUp = uint64(tc.capacity.Down), uint64(tc.capacity.Up)
			s.run(150, never)
			s.wantState(Up)
			var rx uint64
			last := s.now
			s.l.counters(last, 0, 0)
			for range 600 {
				if s.now.Sub(last) >= 250*time.Millisecond {
					rx += uint64(float64(tc.rate) / 8 * s.now.Sub(last).Seconds())
					last = s.now
					s.l.counters(last, rx, 0)
				}
				if lossy(s.k, 0) {
					s.fail()
				} else {
					s.ok()
				}
			}
			s.wantState(tc.want)
			if st := s.l.status(); st.Loss < 0.10 {
				t.Errorf("status loss %.3f: the status must show the queue's loss", st.Loss)
			}
		})
	}
}
