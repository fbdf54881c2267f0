package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
)

// flow is an interface's received-bytes counter: bps from each segment's
// start to the next one's.
type flow struct {
	seg []struct {
		from time.Time
		bps  float64
	}
}

// set makes the counter grow at bps from t on.
func (f *flow) set(t time.Time, bps float64) {
	f.seg = append(f.seg, struct {
		from time.Time
		bps  float64
	}{t, bps})
}

func (f *flow) rx(t time.Time) uint64 {
	var b float64
	for i, s := range f.seg {
		end := t
		if i+1 < len(f.seg) && f.seg[i+1].from.Before(t) {
			end = f.seg[i+1].from
		}
		if end.After(s.from) {
			b += s.bps / 8 * end.Sub(s.from).Seconds()
		}
	}
	return uint64(b)
}

// newLoadedSim is a 3-target link of capacity 20 Mbit/s whose interface
// receives what f says.
func newLoadedSim(t *testing.T, f *flow) *sim {
	cfg := testConfig(3, config.Health{})
	cfg.Links[0].Capacity = config.Capacity{Down: 20_000_000, Up: 20_000_000}
	s := &sim{t: t, l: newLinkState(cfg, cfg.Links[0], t0), now: t0, rx: f.rx}
	f.set(t0, 0)
	return s
}

// decisions returns the logged decisions with message msg since index from.
func (s *sim) decisions(from int, msg string) []decision {
	var out []decision
	for _, d := range s.log[from:] {
		if d.msg == msg {
			out = append(out, d)
		}
	}
	return out
}

const heldMsg = "link failure verdict held"

func TestCongestedLinkIsHeldNotDown(t *testing.T) {
	f := &flow{}
	s := newLoadedSim(t, f)
	s.run(60, never)
	s.wantState(Up)
	// A full queue: 19 Mbit/s arrive, and a streak of probes is lost.
	f.set(s.now, 19e6)
	s.run(30, never)
	mark := len(s.log)
	s.run(8, always)
	s.wantState(Up)
	held := s.decisions(mark, heldMsg)
	if len(held) != 1 || held[0].publish {
		t.Fatalf("held decisions %+v", held)
	}
	for _, want := range []string{"probes failing (3 consecutive failed probes, 0/3 targets answering", "received on wan1 in the last", "congested, not down"} {
		if !strings.Contains(held[0].reason, want) {
			t.Errorf("held reason %q lacks %q", held[0].reason, want)
		}
	}
	// The streak ends; a later one is held again, and logged again.
	s.ok()
	if s.l.held || s.l.fail != 0 {
		t.Fatalf("after a success: held %v, streak %d", s.l.held, s.l.fail)
	}
	s.run(30, never)
	s.run(6, always)
	// 14 failures in 135 probes: degraded by loss, as any lossy link.
	if st := s.l.state(); st != Up && st != Degraded {
		t.Fatalf("state %v: %s", st, s.l.reason)
	}
	if n := len(s.decisions(mark, heldMsg)); n != 2 {
		t.Errorf("%d held decisions, want 2", n)
	}
	for _, d := range s.published(0, StateChanged) {
		if d.to == Down {
			t.Errorf("down: %s", d.reason)
		}
	}
}

func TestCongestionHoldIsBounded(t *testing.T) {
	f := &flow{}
	s := newLoadedSim(t, f)
	s.run(60, never)
	f.set(s.now, 19e6)
	// Traffic flows but no probe is ever answered: the targets are
	// unreachable through a link that still carries something else.
	start := s.now
	for s.l.state() != Down {
		s.fail()
		if s.now.Sub(start) > 10*time.Second {
			t.Fatal("never down")
		}
	}
	down := s.published(0, StateChanged)
	d := down[len(down)-1]
	if took := d.at.Sub(start); took < s.l.holdMax() || took > s.l.holdMax()+2*time.Second {
		t.Errorf("down %v after the streak began, want just after %v", took, s.l.holdMax())
	}
	if !strings.Contains(d.reason, "probes unanswered for") || !strings.Contains(d.reason, "probe targets are unreachable") {
		t.Errorf("reason %q", d.reason)
	}
}

func TestBlackholeWhileHeld(t *testing.T) {
	f := &flow{}
	s := newLoadedSim(t, f)
	s.run(60, never)
	f.set(s.now, 19e6)
	s.run(30, never)
	s.run(8, always)
	s.wantState(Up)
	// The link dies after the last reading of the counter (the sim reads
	// it when results come in, after their timeouts): the queue drains
	// within 100 ms, then nothing.
	dead := s.l.rxs[len(s.l.rxs)-1].at
	f.set(dead.Add(100*time.Millisecond), 0)
	for s.l.state() != Down {
		s.fail()
		if s.now.Sub(dead) > 5*time.Second {
			t.Fatal("never down")
		}
	}
	down := s.published(0, StateChanged)
	d := down[len(down)-1]
	t.Logf("down %v after the blackhole: %s", d.at.Sub(dead), d.reason)
	// The window slides past the drain: 100 ms + 500 ms + the slot
	// between two failure reports, and a backed-off timeout.
	if took := d.at.Sub(dead); took > 100*time.Millisecond+aliveWindow+time.Second {
		t.Errorf("down %v after the blackhole", took)
	}
	if !strings.Contains(d.reason, "nothing comes back") {
		t.Errorf("reason %q", d.reason)
	}
}

func TestBlackholeDuringTrafficIsNotDelayed(t *testing.T) {
	f := &flow{}
	s := newLoadedSim(t, f)
	s.run(60, never)
	f.set(s.now, 19e6)
	s.run(30, never)
	// The blackhole: what was in flight drains for 20 ms, then nothing.
	f.set(s.now.Add(20*time.Millisecond), 0)
	mark := len(s.log)
	s.fail()
	s.fail()
	s.wantState(Up)
	s.fail()
	s.wantState(Down)
	if n := len(s.decisions(mark, heldMsg)); n != 0 {
		t.Errorf("%d held decisions", n)
	}
	if !strings.Contains(s.l.reason, "3 consecutive failed probes, 0/3 targets answering (quorum 1), last error: timeout; only 0 B received on wan1") {
		t.Errorf("reason %q", s.l.reason)
	}
}

func TestTrafficBeforeTheStreakDoesNotCount(t *testing.T) {
	// Counters read only periodically and long before: no reading after
	// the streak's first failure, no evidence.
	s := newSim(t, 3, config.Health{})
	s.run(60, never)
	s.l.rxAdd(s.now.Add(-time.Second), 0)
	s.l.rxAdd(s.now, 10<<20) // 10 MB in the last second, none since
	s.run(3, always)
	s.wantState(Down)
}

func TestTrickleIsNotTraffic(t *testing.T) {
	for _, tc := range []struct {
		name string
		cap  uint64
		bps  float64
	}{
		{"router chatter, no capacity", 0, 200e3},
		{"trickle on a gigabit link", 1e9, 50e6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flow{}
			cfg := testConfig(3, config.Health{})
			cfg.Links[0].Capacity = config.Capacity{Down: config.Rate(tc.cap), Up: config.Rate(tc.cap)}
			s := &sim{t: t, l: newLinkState(cfg, cfg.Links[0], t0), now: t0, rx: f.rx}
			f.set(t0, tc.bps)
			s.run(60, never)
			s.run(3, always)
			s.wantState(Down)
		})
	}
}

func TestAliveNeed(t *testing.T) {
	l := newLinkState(testConfig(1, config.Health{}), testConfig(1, config.Health{}).Links[0], t0)
	d := 133 * time.Millisecond
	for _, tc := range []struct {
		cap  uint64
		want uint64
	}{
		{0, 32 << 10},              // unknown capacity: the floor
		{20e6, 33250},              // 10 % of 332.5 kB
		{1e9, 1662500},             // 10 % of 16.6 MB
		{2e6, 8312},                // slow: a quarter of 33.25 kB
		{256e3, aliveMinBytesSlow}, // very slow: 4 KiB
		{8e6, 32 << 10},            // a quarter (33.25 kB) is above the floor
	} {
		l.s.capDown = tc.cap
		if got := l.aliveNeed(d); got != tc.want {
			t.Errorf("capacity %d: need %d bytes in %v, want %d", tc.cap, got, d, tc.want)
		}
	}
}

func TestTimeoutBackoff(t *testing.T) {
	f := &flow{}
	s := newLoadedSim(t, f)
	for range 60 {
		s.step(time.Millisecond, nil)
	}
	if to := s.l.timeout(0); to != 100*time.Millisecond {
		t.Fatalf("timeout %v, want the 100ms floor", to)
	}
	// Idle link: a timeout is no reason to wait longer.
	s.fail() // target 0
	if to := s.l.timeout(0); to != 100*time.Millisecond {
		t.Errorf("timeout after a timeout on an idle link: %v", to)
	}
	s.ok()
	s.ok()
	// Loaded link: doubles per timeout, up to max_timeout; an answer
	// resets it.
	f.set(s.now, 19e6)
	s.run(6, never)
	var got []time.Duration
	for range 5 {
		s.fail()
		s.ok()
		s.ok()
		got = append(got, s.l.timeout(0))
	}
	want := []time.Duration{200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backed-off timeouts %v, want %v ms", got, want)
		}
	}
	s.step(time.Millisecond, nil)
	if to := s.l.timeout(0); to != 100*time.Millisecond {
		t.Errorf("timeout after an answer: %v", to)
	}
}

func TestHoldDownAbortedEvent(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(30, never)
	s.run(5, always)
	s.wantState(Down)
	s.run(5, never)
	if !s.l.holdDown {
		t.Fatal("no hold-down")
	}
	mark := len(s.log)
	s.fail()
	ab := s.published(mark, HoldDownAborted)
	if len(ab) != 1 || ab[0].from != Down || ab[0].to != Down || !strings.Contains(ab[0].reason, "failure during the hold-down: 1 consecutive failed probes") {
		t.Fatalf("aborted events %+v", ab)
	}
	if st := s.l.status(); st.HoldDown || st.State != Down {
		t.Errorf("status after abort: hold_down %v state %v", st.HoldDown, st.State)
	}
	var k Kind
	if b, _ := HoldDownAborted.MarshalText(); string(b) != "hold-down-aborted" || k.UnmarshalText(b) != nil || k != HoldDownAborted {
		t.Errorf("kind %q round trip: %v", b, k)
	}
}
