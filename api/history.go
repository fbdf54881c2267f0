package api

import (
	"sync"
	"time"
)

// Sample is one link's measurements at one time, for sparklines.
type Sample struct {
	// Time in Unix milliseconds.
	Time     int64         `json:"t"`
	State    string        `json:"state"`
	RTT      time.Duration `json:"rtt_ns"`
	Loss     float64       `json:"loss"`
	UtilDown float64       `json:"util_down"`
	UtilUp   float64       `json:"util_up"`
	RateDown uint64        `json:"rate_down_bps"`
	RateUp   uint64        `json:"rate_up_bps"`
}

// History is the answer of GET /api/v1/history: the recent samples of
// every link, oldest first, taken every IntervalMS; at most Samples are
// kept per link.
type History struct {
	IntervalMS int64               `json:"interval_ms"`
	Samples    int                 `json:"samples"`
	Links      map[string][]Sample `json:"links"`
}

// history keeps the last samples of every link, so a dashboard opened now
// shows the last minutes at once.
type history struct {
	size int
	mu   sync.Mutex
	m    map[string][]Sample
}

func newHistory(size int) *history { return &history{size: size, m: map[string][]Sample{}} }

func (h *history) sample(now time.Time, links []Link) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]bool, len(links))
	for _, l := range links {
		seen[l.Link] = true
		s := append(h.m[l.Link], Sample{
			Time: now.UnixMilli(), State: l.State, RTT: l.RTT, Loss: l.Loss,
			UtilDown: l.UtilDown, UtilUp: l.UtilUp, RateDown: l.RateDown, RateUp: l.RateUp,
		})
		if len(s) > h.size {
			s = append(s[:0:0], s[len(s)-h.size:]...)
		}
		h.m[l.Link] = s
	}
	for name := range h.m {
		if !seen[name] { // removed by a reload
			delete(h.m, name)
		}
	}
}

func (h *history) get(link string) map[string][]Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]Sample, len(h.m))
	for name, s := range h.m {
		if link == "" || name == link {
			out[name] = append([]Sample(nil), s...)
		}
	}
	return out
}
