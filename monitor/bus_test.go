package monitor

import (
	"testing"
	"time"

	"github.com/multihome/multihome/bound"
)

// TestBusBounded: a subscriber that does not read holds at most 2 ×
// BusQueue events (the batch being delivered and the queue); the drops are counted, and what it reads afterwards still ends
// with every link's last event.
func TestBusBounded(t *testing.T) {
	old := BusQueue
	BusQueue = 100
	defer func() { BusQueue = old }()
	var b Bus
	ch, cancel := b.Subscribe()
	defer cancel()
	before := bound.DroppedCount("monitor.events")
	states := []State{Up, Down}
	for i := range 10000 {
		for _, l := range []string{"a", "b", "c"} {
			b.Publish(Event{Kind: StateChanged, Link: l, To: states[(i+len(l))%2], Reason: "test"})
		}
	}
	b.Publish(Event{Kind: StateChanged, Link: "a", To: Degraded})
	if d := bound.DroppedCount("monitor.events") - before; d < 30000-200 {
		t.Errorf("dropped %v of 30001 events with a queue of 100", d)
	}
	last := map[string]State{}
	n := 0
	timeout := time.After(5 * time.Second)
	for n < 1000 {
		select {
		case e := <-ch:
			last[e.Link] = e.To
			n++
			continue
		case <-timeout:
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	if n > 200 {
		t.Errorf("the subscriber received %d events, want at most two queues' worth (200)", n)
	}
	if last["a"] != Degraded || last["b"] != states[(9999+1)%2] || last["c"] != states[(9999+1)%2] {
		t.Errorf("last states received: %v; want a degraded, b and c %v", last, states[(9999+1)%2])
	}
}
