package api

import (
	"encoding/json"
	"strconv"
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

// eventLog is a ring of the last entries, each kept with its
// server-sent-event frame, encoded once when it is added and shared,
// read-only, by every stream (docs/scale.md "API event stream"). Readers
// wait for new ones on a channel that is closed, and replaced, on every
// append: no reader can slow the writer, and one that falls a whole ring
// behind skips ahead (and is told how many entries it lost).
type eventLog struct {
	mu   sync.RWMutex
	buf  []logItem
	head int    // index of the oldest entry
	n    int    // entries held
	next uint64 // seq of the next entry
	wake chan struct{}
}

type logItem struct {
	e     Entry
	frame []byte // "id: <seq>\nevent: entry\ndata: <JSON>\n\n"; never modified
}

// newEventLog returns a log of size entries numbered from first (> 0).
func newEventLog(size int, first uint64) *eventLog {
	return &eventLog{buf: make([]logItem, size), next: first, wake: make(chan struct{})}
}

// frameOf is e as one server-sent event.
func frameOf(e Entry) []byte {
	b, err := json.Marshal(e)
	if err != nil { // an Entry has nothing json cannot encode
		b, _ = json.Marshal(Entry{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Link: e.Link, Reason: "unencodable entry: " + err.Error()})
	}
	f := make([]byte, 0, len(b)+48)
	f = append(f, "id: "...)
	f = strconv.AppendUint(f, e.Seq, 10)
	f = append(f, "\nevent: entry\ndata: "...)
	f = append(f, b...)
	return append(f, "\n\n"...)
}

func (l *eventLog) add(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = l.next
	l.next++
	// Encoded under the lock so frames stay in seq order; once per
	// event, whatever the number of streams.
	it := logItem{e: e, frame: frameOf(e)}
	if l.n < len(l.buf) {
		l.buf[(l.head+l.n)%len(l.buf)] = it
		l.n++
	} else {
		l.buf[l.head] = it
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
	l.mu.RLock()
	defer l.mu.RUnlock()
	skip, count := l.window(seq)
	if limit > 0 && count > limit {
		skip, count = l.n-limit, limit
	}
	var out []Entry
	if count > 0 {
		out = make([]Entry, count)
		for i := range count {
			out[i] = l.buf[(l.head+skip+i)%len(l.buf)].e
		}
	}
	return out, l.wake
}

// window returns where the entries after seq start among those held and
// how many there are. Seqs are consecutive: found by arithmetic, so a
// reader waking for one event costs O(1), not O(ring).
func (l *eventLog) window(seq uint64) (skip, count int) {
	oldest := l.next - uint64(l.n)
	if seq >= oldest {
		skip = int(min(seq-oldest+1, uint64(l.n)))
	}
	return skip, l.n - skip
}

// frames appends to dst the frames of the entries after seq (only link's
// when link is set) and returns them with the seq of the newest entry,
// how many entries after seq are no longer held (the reader fell a whole
// ring behind), and a channel closed when a newer entry arrives. The
// frames are shared: callers must not modify them. A stream reusing dst
// allocates nothing per event.
func (l *eventLog) frames(seq uint64, link string, dst [][]byte) (out [][]byte, last, lost uint64, wake <-chan struct{}) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if oldest := l.next - uint64(l.n); seq+1 < oldest {
		lost = oldest - seq - 1
	}
	skip, count := l.window(seq)
	for i := range count {
		it := &l.buf[(l.head+skip+i)%len(l.buf)]
		if link == "" || it.e.Link == link {
			dst = append(dst, it.frame)
		}
	}
	return dst, l.next - 1, lost, l.wake
}

// last returns the seq of the newest entry (the one before the first if
// none).
func (l *eventLog) last() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next - 1
}
