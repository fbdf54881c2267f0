package bfd

import (
	"testing"
	"time"
)

// pair runs two sessions against each other on a fake clock, delivering
// every packet after delay, until until; drop decides which packets are
// lost (a→b when aToB).
func pair(t *testing.T, a, b *Session, start time.Time, until time.Duration, drop func(now time.Time, aToB bool) bool) time.Time {
	t.Helper()
	now := start
	type inflight struct {
		at  time.Time
		p   Packet
		toB bool
	}
	var q []inflight
	send := func(s *Session, toB bool) {
		p := s.Packet(now)
		if drop == nil || !drop(now, toB) {
			q = append(q, inflight{now.Add(time.Millisecond), p, toB})
		}
	}
	for now.Before(start.Add(until)) {
		now = now.Add(time.Millisecond)
		for _, s := range []*Session{a, b} {
			s.Tick(now)
		}
		var due, rest []inflight
		for _, f := range q {
			if f.at.After(now) {
				rest = append(rest, f)
			} else {
				due = append(due, f)
			}
		}
		q = rest
		for _, f := range due {
			dst := b
			if !f.toB {
				dst = a
			}
			if _, now2 := dst.Receive(f.p, now); now2 {
				send(dst, dst == a)
			}
		}
		for i, s := range []*Session{a, b} {
			if !now.Before(s.NextTx()) {
				send(s, i == 0)
			}
		}
	}
	return now
}

func TestSessionUpPollDown(t *testing.T) {
	cfg := Config{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
	a, b := NewSession(cfg), NewSession(cfg)
	t0 := time.Unix(1000, 0)
	now := pair(t, a, b, t0, 5*time.Second, nil)
	if a.State != Up || b.State != Up {
		t.Fatalf("states %s %s, want up up", a.State, b.State)
	}
	if a.poll || b.poll {
		t.Errorf("poll sequence did not complete")
	}
	if tx := a.TxInterval(); tx != 300*time.Millisecond {
		t.Errorf("tx interval once up: %v", tx)
	}
	if d := a.DetectionTime(); d != 900*time.Millisecond {
		t.Errorf("detection time %v", d)
	}
	// Cut b→a: a's detection timer runs from the last packet it heard
	// (sent at most one 300 ms interval before the cut) and expires 900 ms
	// later; it is seen here at the next packet a sends (within one more
	// interval). So 600 ms .. 1.2 s after the cut.
	cut := now
	var downAt time.Time
	pair(t, a, b, now, 2*time.Second, func(n time.Time, aToB bool) bool {
		if a.State != Up && downAt.IsZero() {
			downAt = n
		}
		return !aToB
	})
	if a.State != Down || a.Diag != DiagDetectExpired {
		t.Fatalf("a: %s %s", a.State, a.Diag)
	}
	if d := downAt.Sub(cut); d < 550*time.Millisecond || d > 1250*time.Millisecond {
		t.Errorf("detected after %v, want 600 ms .. 1.2 s", d)
	}
	// b hears a's Down and follows with "neighbor signaled session down".
	if b.State == Up {
		t.Errorf("b still up")
	}
}

func TestSessionTransitions(t *testing.T) {
	s := NewSession(Config{DesiredMinTx: time.Second, RequiredMinRx: time.Second, DetectMult: 3})
	now := time.Unix(0, 0)
	if p := s.Packet(now); p.State != Down || p.YourDisc != 0 || p.DesiredMinTx != 1e6 {
		t.Fatalf("first packet %+v", p)
	}
	if ch, _ := s.Receive(Packet{State: Down, MyDisc: 5, DetectMult: 3, DesiredMinTx: 1e6, RequiredMinRx: 1e6}, now); !ch || s.State != Init {
		t.Fatalf("down+down: %s", s.State)
	}
	if ch, _ := s.Receive(Packet{State: Up, MyDisc: 5, YourDisc: s.LocalDisc, DetectMult: 3, DesiredMinTx: 1e6, RequiredMinRx: 1e6}, now); !ch || s.State != Up {
		t.Fatalf("init+up: %s", s.State)
	}
	if _, sendNow := s.Receive(Packet{State: Up, Poll: true, MyDisc: 5, YourDisc: s.LocalDisc, DetectMult: 3, DesiredMinTx: 1e6, RequiredMinRx: 1e6}, now); !sendNow {
		t.Fatal("poll not answered at once")
	}
	if p := s.Packet(now); !p.Final || p.Poll {
		t.Fatalf("answer to poll: %+v", p)
	}
	if ch, _ := s.Receive(Packet{State: Up, MyDisc: 5, YourDisc: 99, DetectMult: 3}, now); ch {
		t.Fatal("accepted a packet for another discriminator")
	}
	if ch, _ := s.Receive(Packet{State: AdminDown, MyDisc: 5, YourDisc: s.LocalDisc, DetectMult: 3}, now); !ch || s.State != Down || s.Diag != DiagNeighborDown {
		t.Fatalf("peer admin down: %s %s", s.State, s.Diag)
	}
	if tx := s.TxInterval(); tx < time.Second {
		t.Errorf("tx interval while down %v, want ≥ 1s", tx)
	}
}
