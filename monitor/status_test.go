package monitor

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/multihome/multihome/config"
)

// lastCount returns the last "N/M ... answering" count a reason quotes.
func lastCount(t *testing.T, reason string) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+)/\d+ (targets )?answering`).FindAllStringSubmatch(reason, -1)
	if len(m) == 0 {
		t.Fatalf("reason %q quotes no count", reason)
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestStatusReasonNotStale: the status's reason never contradicts the
// targets column. A link comes up at its first answer ("1/3 targets
// answering"); once all three answer, the status says so too.
func TestStatusReasonNotStale(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.ok()
	s.wantState(Up)
	s.ok()
	s.ok()
	st := s.l.status()
	if st.TargetsUp != 3 {
		t.Fatalf("targets up %d, want 3", st.TargetsUp)
	}
	if n := lastCount(t, st.Reason); n != st.TargetsUp {
		t.Errorf("status reason %q says %d answering while %d/3 answer", st.Reason, n, st.TargetsUp)
	}
	// The transition's own reason (events, log) is kept as it was.
	if want := "1/3 targets answering (quorum 1)"; s.l.reason != want {
		t.Errorf("transition reason %q, want %q", s.l.reason, want)
	}
	// Unchanged counts: the reason as written.
	s.fail()
	s.fail()
	s.fail()
	s.wantState(Down)
	if st := s.l.status(); st.Reason != s.l.reason {
		t.Errorf("down: status reason %q, want the transition's %q", st.Reason, s.l.reason)
	}
}

// TestStatusLossWhileDown: a link down with every probe failing shows
// that loss, not the 0 % of the working link it was (its decisions still
// leave outages out of the loss, and so does its status once it is back).
func TestStatusLossWhileDown(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	s.run(60, never)
	s.wantState(Up)
	s.run(60, always)
	s.wantState(Down)
	st := s.l.status()
	if st.Loss < 0.4 {
		t.Errorf("down with every probe failing for 60 probes: loss %.1f%%", 100*st.Loss)
	}
	if q := s.l.win.quality(true); q.loss != 0 {
		t.Errorf("the decisions' loss counts the outage: %.1f%%", 100*q.loss)
	}
	s.run(300, never)
	s.wantState(Up)
	if st := s.l.status(); st.Loss != 0 {
		t.Errorf("back up: loss %.1f%%, want 0 (the outage is not the link's loss)", 100*st.Loss)
	}
}
