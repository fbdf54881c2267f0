package monitor

import (
	"os"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
)

// TestTransitionTableInDocs: docs/monitor.md shows the state machine's
// table exactly as the code has it (transitions), row for row.
func TestTransitionTableInDocs(t *testing.T) {
	b, err := os.ReadFile("../docs/monitor.md")
	if err != nil {
		t.Fatal(err)
	}
	want := transitionTable()
	doc := string(b)
	i := strings.Index(doc, "| from | when | to | event |\n")
	if i < 0 {
		t.Fatalf("docs/monitor.md has no transition table; it should read:\n%s", want)
	}
	j := strings.Index(doc[i:], "\n\n")
	if j < 0 {
		j = len(doc) - i
	}
	if got := doc[i : i+j+1]; got != want {
		t.Errorf("docs/monitor.md's transition table differs from the code's; the code's:\n%s\ndocs:\n%s", want, got)
	}
}

// TestTransitionTable: every (phase, input) has at most one row, every
// row's event matches its move, and next finds each row.
func TestTransitionTable(t *testing.T) {
	seen := map[[2]int]bool{}
	for _, tr := range transitions {
		k := [2]int{int(tr.from), int(tr.in)}
		if seen[k] {
			t.Errorf("two rows for %s + input %d", tr.from, tr.in)
		}
		seen[k] = true
		if got, ok := next(tr.from, tr.in); !ok || got != tr {
			t.Errorf("next(%s, %d) = %+v, %v", tr.from, tr.in, got, ok)
		}
		changes := tr.from.health() != tr.to.health()
		if changes != (tr.event == evState) {
			t.Errorf("%s → %s: event %q", tr.from, tr.to, tr.event)
		}
		if (tr.event == evStarted) != (tr.to == pHoldDown && tr.from != pHoldDown) {
			t.Errorf("%s → %s: event %q", tr.from, tr.to, tr.event)
		}
	}
	if _, ok := next(pDown, inQuorum); ok {
		t.Error("a down link came back up on quorum alone")
	}
}

// TestTransitionsDriveTheLink: a sim run through the main paths records
// exactly the moves the table allows, in the phases it names.
func TestTransitionsDriveTheLink(t *testing.T) {
	s := newSim(t, 3, config.Health{})
	type move struct{ from, to phase }
	var moves []move
	last := s.l.phase()
	step := func(f func()) {
		f()
		if p := s.l.phase(); p != last {
			moves = append(moves, move{last, p})
			last = p
		}
	}
	step(s.ok)
	for range 3 {
		step(s.fail)
	}
	for range 100 {
		step(s.ok)
	}
	for _, m := range moves {
		found := false
		for _, tr := range transitions {
			found = found || (tr.from == m.from && tr.to == m.to)
		}
		if !found {
			t.Errorf("move %s → %s is not in the table", m.from, m.to)
		}
	}
	want := []move{{pUnknown, pUp}, {pUp, pDown}, {pDown, pHoldDown}, {pHoldDown, pUp}}
	if len(moves) != len(want) {
		t.Fatalf("moves %v, want %v", moves, want)
	}
	for i := range want {
		if moves[i] != want[i] {
			t.Fatalf("moves %v, want %v", moves, want)
		}
	}
}
