package monitor

import (
	"fmt"
	"testing"
	"time"
)

// TestVerdictOrder: Hold and Release from another subsystem take effect in
// the order they were called, so the last word stands. (They used to run
// on one goroutine each: a Release could overtake its Hold, and a
// require_default hold then stuck for good.)
func TestVerdictOrder(t *testing.T) {
	m, _, events := startFake(t, twoLinks())
	waitEvent(t, events, 2*time.Second, stateIs("a", Up))
	const src = "bgp 198.51.100.1 require_default"
	// Rounds of Hold then Release at once (a neighbour's default route
	// flapping): after each round the link must not be held.
	for round := range 20 {
		for i := range 50 {
			m.Hold("a", src, fmt.Sprintf("no default route (%d/%d)", round, i))
			m.Release("a", src)
		}
		m.Hold("b", src, fmt.Sprintf("round %d", round))
		deadline := time.Now().Add(2 * time.Second)
		for {
			a, b := m.Snapshot()[0], m.Snapshot()[1]
			if len(b.Holds) == 1 && b.Holds[0] == fmt.Sprintf("%s: round %d", src, round) {
				// b's hold was the last call: everything before it ran.
				time.Sleep(20 * time.Millisecond) // (the old goroutines, if any, too)
				if a = m.Snapshot()[0]; len(a.Holds) != 0 {
					t.Fatalf("round %d: Hold then Release, and a stays held: %q", round, a.Holds)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: b's hold not applied: %q", round, b.Holds)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestVerdictBeforeRun: a verdict given before Run is applied when it
// starts, not dropped.
func TestVerdictBeforeRun(t *testing.T) {
	m, err := New(twoLinks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Hold("a", "ha", "backup node")
	if len(m.verdicts.q) != 1 {
		t.Fatalf("queued %d verdicts, want 1", len(m.verdicts.q))
	}
	m.applyVerdicts()
	if s := m.Snapshot()[0]; len(s.Holds) != 1 || s.State != Down {
		t.Fatalf("after the queue ran: holds %q, state %s", s.Holds, s.State)
	}
}
