package monitor

import (
	"fmt"
	"strings"
)

// The link state machine as a table: (phase, input) → (next phase, event).
// Which input the evidence amounts to is worked out by the bookkeeping
// (result, tick, setCarrier, setHold, Evidence); next is a pure lookup;
// enter carries the move out (state, flags, the decision to publish).
// docs/monitor.md holds the same table (TestTransitionTableInDocs).

// phase is where a link is: its health, with the recovery's hold-down as
// a phase of its own (its State stays down).
type phase int

const (
	pUnknown phase = iota
	pUp
	pDegraded
	pDown
	pHoldDown
)

var phaseNames = [...]string{"unknown", "up", "degraded", "down", "down, hold-down"}

func (p phase) String() string { return phaseNames[p] }

// health is the State of a phase.
func (p phase) health() State {
	return [...]State{Unknown, Up, Degraded, Down, Down}[p]
}

// input is what the evidence amounts to.
type input int

const (
	// inQuorum: min_targets_up targets answer.
	inQuorum input = iota
	// inFailStreak: a failure streak of need probes, or need probes
	// without quorum, and the interface received nothing meanwhile.
	inFailStreak
	// inFailHeld: such a streak while the interface kept receiving.
	inFailHeld
	// inOutage: the carrier went, a BFD session went down, or another
	// subsystem set a hold.
	inOutage
	// inQualityBad: window loss, RTT p50 or jitter over a degraded
	// threshold.
	inQualityBad
	// inQualityGood: all at or under the recovered thresholds.
	inQualityGood
	// inProven: up_after good probes with quorum met since the link went
	// down, and a hold_down to wait.
	inProven
	// inReset: during recovery, a failure streak the link's own loss makes
	// improbable.
	inReset
	// inRecovered: the hold-down passed without failure (or up_after good
	// probes with no hold_down), the window within the degraded
	// thresholds.
	inRecovered
	// inRecoveredLossy: the same, the window over a degraded threshold.
	inRecoveredLossy
)

var inputDocs = [...]string{
	inQuorum:         "the first probe after which `min_targets_up` targets answer",
	inFailStreak:     "a failure streak of *need* probes, or *need* probes with fewer than `min_targets_up` targets answering; nothing received meanwhile",
	inFailHeld:       "such a streak while the interface kept receiving traffic (logged \"link failure verdict held\"), for at most 3 × `max_timeout`",
	inOutage:         "carrier lost, a BFD session down, or a hold set by another subsystem",
	inQualityBad:     "window loss, RTT p50 or jitter over a `degraded` threshold",
	inQualityGood:    "window loss, RTT p50 and jitter at or under the `recovered` thresholds",
	inProven:         "`up_after` good probes with quorum met since the link went down",
	inReset:          "a failure streak the link's own loss makes improbable",
	inRecovered:      "`hold_down` passed without failure (at once with `hold_down: 0`), window within the `degraded` thresholds",
	inRecoveredLossy: "`hold_down` passed without failure (at once with `hold_down: 0`), window over a `degraded` threshold",
}

// transition is one row of the table. event is the decision recorded
// (published unless it is "logged"), "" for none.
type transition struct {
	from  phase
	in    input
	to    phase
	event string
}

// Events of the table.
const (
	evState   = "StateChanged"
	evStarted = "HoldDownStarted"
	evAborted = "HoldDownAborted"
	evHeld    = "verdict held (logged)"
)

var transitions = []transition{
	{pUnknown, inQuorum, pUp, evState},
	{pUnknown, inFailStreak, pDown, evState},
	{pUp, inFailStreak, pDown, evState},
	{pDegraded, inFailStreak, pDown, evState},
	{pUnknown, inFailHeld, pUnknown, evHeld},
	{pUp, inFailHeld, pUp, evHeld},
	{pDegraded, inFailHeld, pDegraded, evHeld},
	{pUnknown, inOutage, pDown, evState},
	{pUp, inOutage, pDown, evState},
	{pDegraded, inOutage, pDown, evState},
	{pDown, inOutage, pDown, ""},
	{pHoldDown, inOutage, pDown, ""},
	{pUp, inQualityBad, pDegraded, evState},
	{pDegraded, inQualityGood, pUp, evState},
	{pDown, inProven, pHoldDown, evStarted},
	{pDown, inReset, pDown, ""},
	{pHoldDown, inReset, pDown, evAborted},
	{pDown, inRecovered, pUp, evState},
	{pDown, inRecoveredLossy, pDegraded, evState},
	{pHoldDown, inRecovered, pUp, evState},
	{pHoldDown, inRecoveredLossy, pDegraded, evState},
}

// next is the table's lookup: the move for input in at phase from, and
// false when in changes nothing there.
func next(from phase, in input) (transition, bool) {
	for _, t := range transitions {
		if t.from == from && t.in == in {
			return t, true
		}
	}
	return transition{}, false
}

// transitionTable renders the table as docs/monitor.md shows it.
func transitionTable() string {
	var b strings.Builder
	b.WriteString("| from | when | to | event |\n|---|---|---|---|\n")
	for _, t := range transitions {
		ev := t.event
		if ev == "" {
			ev = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.from, inputDocs[t.in], t.to, ev)
	}
	return b.String()
}
