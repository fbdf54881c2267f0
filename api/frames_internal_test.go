package api

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestEventLogFrames: each entry's stream frame is encoded once, in the
// stream's format; readers get shared frames, filtered by link, and learn
// how many entries they lost when they fell a whole ring behind.
func TestEventLogFrames(t *testing.T) {
	l := newEventLog(3, 1)
	for i, link := range []string{"a", "b", "a", "b", "a"} {
		l.add(Entry{Kind: "state", Link: link, Reason: fmt.Sprint("r", i)})
	}
	all, _ := l.since(0, 0) // seqs 3, 4, 5
	for _, e := range all {
		b, _ := json.Marshal(e)
		want := fmt.Sprintf("id: %d\nevent: entry\ndata: %s\n\n", e.Seq, b)
		got, last, lost, _ := l.frames(e.Seq-1, "", nil)
		if len(got) != 5-int(e.Seq)+1 || string(got[0]) != want || last != 5 || lost != 0 {
			t.Errorf("frames after %d: %q (last %d, lost %d), want first %q", e.Seq-1, got, last, lost, want)
		}
	}
	got, last, lost, wake := l.frames(1, "a", make([][]byte, 0, 4))
	if len(got) != 2 || last != 5 || lost != 1 {
		t.Errorf("frames of a after 1: %d frames, last %d, lost %d; want 2 (seqs 3 and 5), 5, 1 (seq 2)", len(got), last, lost)
	}
	// Shared, not copied: the ring's frame itself.
	if &got[0][0] != &l.buf[l.head].frame[0] {
		t.Error("frames copies the ring's frames: every stream would pay for them")
	}
	if got, _, lost, _ := l.frames(5, "", nil); len(got) != 0 || lost != 0 {
		t.Errorf("frames after the newest: %q, lost %d", got, lost)
	}
	l.add(Entry{Kind: "reload"})
	select {
	case <-wake:
	default:
		t.Error("frames' channel not closed by add")
	}
}

// BenchmarkEventLogAdd is the per-event cost paid once, whatever the
// number of streams: seq, encoding, ring slot.
func BenchmarkEventLogAdd(b *testing.B) {
	l := newEventLog(DefaultHistory, 1)
	e := Entry{Kind: "state", Link: "cable", From: "up", To: "down", Reason: "loss 100% over 3 probes", Status: &Link{Link: "cable", State: "down"}}
	b.ReportAllocs()
	for b.Loop() {
		l.add(e)
	}
}
