package api

import (
	"sync"
	"time"

	"github.com/multihome/multihome/monitor"
)

// Entry is one line of the decision log: a link event from the monitor,
// a config reload, a BGP announcement decision (kind "bgp"), or a BFD
// session's down and what was made of it (kind "bfd").
type Entry struct {
	// Seq numbers entries in order; streams resume after it. A daemon
	// starts numbering at its start time in microseconds, so the entries
	// of a restarted daemon come after those of the one before.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is the monitor event's kind (state, saturation, admin,
	// hold-down), "reload", "bgp", "bfd" or "ha" (a role change of an HA
	// node, From and To its roles).
	Kind string `json:"kind"`
	Link string `json:"link,omitempty"`
	// Neighbor is the BGP neighbour of a "bgp" entry, whose From and To
	// are what it is sent: announce, prepend N or withdraw (From empty
	// when the speaker starts).
	Neighbor string `json:"neighbor,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	// Reason is the evidence for the decision, in one line.
	Reason string `json:"reason"`
	// Error is why a reload was rejected.
	Error string `json:"error,omitempty"`
	// Status is the link right after the change (link events only).
	Status *Link `json:"status,omitempty"`
}

func entryOf(e monitor.Event) Entry {
	st := linkOf(e.Status)
	return Entry{
		Time:   e.Time,
		Kind:   e.Kind.String(),
		Link:   e.Link,
		From:   e.From.String(),
		To:     e.To.String(),
		Reason: e.Reason,
		Status: &st,
	}
}

// eventLog is a ring of the last entries. Readers wait for new ones on a
// channel that is closed, and replaced, on every append: no reader can
// slow the writer, and one that falls a whole ring behind skips ahead.
type eventLog struct {
	mu   sync.Mutex
	buf  []Entry
	head int    // index of the oldest entry
	n    int    // entries held
	next uint64 // seq of the next entry
	wake chan struct{}
}

// newEventLog returns a log of size entries numbered from first (> 0).
func newEventLog(size int, first uint64) *eventLog {
	return &eventLog{buf: make([]Entry, size), next: first, wake: make(chan struct{})}
}

func (l *eventLog) add(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = l.next
	l.next++
	if l.n < len(l.buf) {
		l.buf[(l.head+l.n)%len(l.buf)] = e
		l.n++
	} else {
		l.buf[l.head] = e
		l.head = (l.head + 1) % len(l.buf)
	}
	close(l.wake)
	l.wake = make(chan struct{})
	return e
}

// since returns the entries after seq (at most limit, the newest ones when
// there are more; limit <= 0 means all), oldest first, and a channel
// closed when a newer entry arrives.
func (l *eventLog) since(seq uint64, limit int) ([]Entry, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Seqs are consecutive: the first entry after seq is found by
	// arithmetic and only the newer entries are copied, so a stream
	// waking for one event costs O(1), not O(ring), under the lock
	// (docs/scale.md: 1000 clients).
	oldest := l.next - uint64(l.n)
	skip := 0
	if seq >= oldest {
		skip = int(min(seq-oldest+1, uint64(l.n)))
	}
	count := l.n - skip
	if limit > 0 && count > limit {
		skip, count = l.n-limit, limit
	}
	var out []Entry
	if count > 0 {
		out = make([]Entry, count)
		for i := range count {
			out[i] = l.buf[(l.head+skip+i)%len(l.buf)]
		}
	}
	return out, l.wake
}

// last returns the seq of the newest entry (the one before the first if
// none).
func (l *eventLog) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}
