package monitor

import (
	"sync"
	"time"
)

// verdicts carries other subsystems' verdicts (Evidence, Hold, Release)
// to the loop goroutine in the order they were given: a FIFO that never
// blocks the caller (BFD and the BGP speaker call from their own loops)
// and one kick channel the loop selects on. Verdicts given before Run
// wait in the queue; the loop applies them when it starts.
type verdicts struct {
	mu   sync.Mutex
	q    []verdict
	kick chan struct{}
}

// verdict is one call: a link, when it was made, and what it does to
// the link's state (in the loop).
type verdict struct {
	link string
	at   time.Time
	fn   func(l *linkState, now time.Time)
}

func newVerdicts() *verdicts { return &verdicts{kick: make(chan struct{}, 1)} }

// put appends a verdict and wakes the loop.
func (v *verdicts) put(link string, fn func(l *linkState, now time.Time)) {
	v.mu.Lock()
	v.q = append(v.q, verdict{link: link, at: time.Now(), fn: fn})
	v.mu.Unlock()
	select {
	case v.kick <- struct{}{}:
	default:
	}
}

// take returns the queued verdicts, oldest first, and empties the queue.
func (v *verdicts) take() []verdict {
	v.mu.Lock()
	defer v.mu.Unlock()
	q := v.q
	v.q = nil
	return q
}

// applyVerdicts runs the queued verdicts in order, in the loop.
func (m *Monitor) applyVerdicts() {
	for _, v := range m.verdicts.take() {
		if l := m.link(v.link); l != nil {
			v.fn(l.linkState, v.at)
			m.flush(l)
		}
	}
}
