package monitor

import (
	"sync"

	"github.com/multihome/multihome/bound"
)

// BusQueue bounds each subscriber's queue (a subscriber holds at most
// twice that: the queue and the batch being delivered). When a consumer falls that far
// behind (a hung nft stalling outbound, a stuck API client), its queue is
// compacted: of the events queued for one link and kind, only the latest
// is kept, so it still learns every link's current state; what goes is
// counted in multihome_bound_dropped_total{queue="monitor.events"}.
// Only if that is not enough are the oldest events dropped.
var BusQueue = 4096

// Bus fans events out to subscribers. Publish never blocks the publisher:
// each subscriber has its own bounded queue (BusQueue) drained by its own
// goroutine, so a slow consumer delays only itself.
type Bus struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	out    chan Event
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	done   chan struct{}
	closed bool
}

// Subscribe registers a subscriber; cancel unregisters it and closes the
// channel.
func (b *Bus) Subscribe() (<-chan Event, func()) {
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = make(map[*subscriber]struct{})
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump()
	var once sync.Once
	return s.out, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			close(s.done)
		})
	}
}

// Publish queues e for every subscriber.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.mu.Lock()
		s.queue = append(s.queue, e)
		var n int
		if len(s.queue) > BusQueue {
			s.queue, n = compact(s.queue, BusQueue)
		}
		s.mu.Unlock()
		bound.Dropped("monitor.events", n, "a subscriber fell behind: kept the latest event per link and kind")
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *subscriber) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range q {
			select {
			case s.out <- e:
			case <-s.done:
				return
			}
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}

// compact shortens q to at most max events (and by at least a quarter of
// max, so that it is not done on every event): it keeps the latest event
// of each link and kind, in order, then, if still too long, the newest.
// It returns the queue and how many events went.
func compact(q []Event, max int) ([]Event, int) {
	type key struct {
		link string
		kind Kind
	}
	target := max - max/4
	latest := map[key]int{}
	for i, e := range q {
		latest[key{e.Link, e.Kind}] = i
	}
	out := make([]Event, 0, len(q))
	drop := len(q) - target
	for i, e := range q {
		if drop > 0 && latest[key{e.Link, e.Kind}] != i {
			drop--
			continue
		}
		out = append(out, e)
	}
	if len(out) > target {
		out = out[len(out)-target:]
	}
	return out, len(q) - len(out)
}
