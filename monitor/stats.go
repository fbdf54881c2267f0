package monitor

import (
	"math"
	"slices"
	"time"
)

// sample is one probe result kept in a link's sliding window.
type sample struct {
	at     time.Time // when the result came in
	sent   time.Time // when the probe was sent
	target int
	fail   bool
	rtt    time.Duration // successes only
	// jit is |rtt - previous rtt of the same target|, when both succeeded
	// (RFC 3550's D), valid when hasJit.
	jit    time.Duration
	hasJit bool
	// silent: the failure of a target that stopped answering while the
	// others answer; it says nothing about the link (quorum covers it).
	silent bool
	// outage: the failure belongs to the streak that took the link down;
	// it is counted as downtime, not as loss of a working link.
	outage bool
	// congested: the result came in while the link carried traffic at its
	// saturation threshold; its loss and delay are the queue's, filled by
	// the site's own traffic, and say nothing of the link's quality.
	congested bool
}

// window holds the samples of the last d.
type window struct {
	d time.Duration
	s []sample
}

func (w *window) add(s sample) {
	w.s = append(w.s, s)
	w.trim(s.at)
}

func (w *window) trim(now time.Time) {
	cut := 0
	for cut < len(w.s) && now.Sub(w.s[cut].at) > w.d {
		cut++
	}
	if cut > 0 {
		w.s = slices.Delete(w.s, 0, cut)
	}
}

// quality is what the window says about a working link.
type quality struct {
	n        int     // samples counted for loss (not silent, not outage)
	loss     float64 // 0..1
	p50, p95 time.Duration
	jitter   time.Duration // mean |D| of consecutive RTTs per target
}

// quality measures the window. Judging (skipCongested) leaves out the
// results that came in while the link was congested; the status shows
// them, so that an operator sees the loss and delay the queue causes.
func (w *window) quality(skipCongested bool) quality {
	var q quality
	var lost int
	var rtts []time.Duration
	var jsum time.Duration
	var jn int
	for _, s := range w.s {
		if s.silent || s.outage || skipCongested && s.congested {
			continue
		}
		q.n++
		if s.fail {
			lost++
			continue
		}
		rtts = append(rtts, s.rtt)
		if s.hasJit {
			jsum += s.jit
			jn++
		}
	}
	if q.n > 0 {
		q.loss = float64(lost) / float64(q.n)
	}
	q.p50 = percentile(rtts, 0.50)
	q.p95 = percentile(rtts, 0.95)
	if jn > 0 {
		q.jitter = jsum / time.Duration(jn)
	}
	return q
}

// lossWithOutages returns the loss over the window counting the outage
// streaks too (silent targets' failures still left out): what a link that
// is down loses. NaN without samples.
func (w *window) lossWithOutages() float64 {
	var n, lost int
	for _, s := range w.s {
		if s.silent {
			continue
		}
		n++
		if s.fail {
			lost++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return float64(lost) / float64(n)
}

// targetLoss returns the loss of one target over the window (its own
// failures, silent or not, outages excluded).
func (w *window) targetLoss(target int) float64 {
	var n, lost int
	for _, s := range w.s {
		if s.target != target || s.outage {
			continue
		}
		n++
		if s.fail {
			lost++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(lost) / float64(n)
}

// percentile returns the p-quantile (nearest rank) of v; v is reordered.
func percentile(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	k := int(math.Ceil(p*float64(len(v)))) - 1
	k = max(0, min(k, len(v)-1))
	return v[k]
}

// rttEstimator is TCP's smoothed RTT and variation (RFC 6298).
type rttEstimator struct {
	srtt, rttvar time.Duration
	ok           bool
}

func (e *rttEstimator) add(r time.Duration) {
	if !e.ok {
		e.srtt, e.rttvar, e.ok = r, r/2, true
		return
	}
	d := e.srtt - r
	if d < 0 {
		d = -d
	}
	e.rttvar += (d - e.rttvar) / 4
	e.srtt += (r - e.srtt) / 8
}

// rto is srtt + 4·rttvar clamped to [lo, hi]; hi before any sample.
func (e *rttEstimator) rto(lo, hi time.Duration) time.Duration {
	if !e.ok {
		return hi
	}
	return max(lo, min(hi, e.srtt+4*e.rttvar))
}

// history is the outcome of the last historyLen probe slots of a working
// link, for the background failure rate p̂. Failures of a streak enter it
// only once the streak is over, and not at all when the streak was an
// outage.
type history struct {
	buf  []histEntry
	next int
}

type histEntry struct {
	fail   bool
	silent bool // the target turned out to be down on its own
	target int
	sent   time.Time
}

const historyLen = 30

func (h *history) add(e histEntry) {
	if h.buf == nil {
		h.buf = make([]histEntry, historyLen)
	}
	h.buf[h.next] = e
	h.next = (h.next + 1) % len(h.buf)
}

// silence marks the failures of target since the given time as silent.
func (h *history) silence(target int, since time.Time) {
	for i := range h.buf {
		if e := &h.buf[i]; e.fail && e.target == target && !e.sent.Before(since) {
			e.silent = true
		}
	}
}

// rate is the failure rate over the last historyLen slots. Slots not seen
// yet count as successes: a fresh link is presumed clean, so that a
// blackhole right after start is detected as fast as later.
// Entries of target skip are left out (-1: none).
func (h *history) rate(skip int) float64 {
	n, all := 0, historyLen
	for _, e := range h.buf {
		if e.target == skip && !e.sent.IsZero() {
			all--
			continue
		}
		if e.fail && !e.silent {
			n++
		}
	}
	if all <= 0 {
		return 0
	}
	return float64(n) / float64(all)
}

// Streak lengths. A failure streak of k slots on a working link with
// independent per-probe loss p happens with probability p^k per slot. The
// link is declared down once the streak reaches the length a link with the
// measured background loss p̂ would show with probability below
// falseDownP: k ≥ ln(falseDownP)/ln(p̂), never less than DownAfter.
const (
	falseDownP = 1e-6
	// A recovering link restarts its count when its current failure streak
	// is one a link with loss p̂ shows with probability below recoverP:
	// with p̂ = 0 any failure does; with p̂ = 30 % it takes 4 in a row.
	recoverP = 1e-2
)

// streakNeeded returns the streak length that is unlikely (probability
// below eps) on a link that loses a fraction p of its probes at random,
// at least floor and at most ceil.
func streakNeeded(p, eps float64, floor, ceil int) int {
	if p <= 0 {
		return floor
	}
	if p >= 1 {
		return max(floor, ceil)
	}
	k := int(math.Ceil(math.Log(eps)/math.Log(p) - 1e-9))
	return max(floor, min(k, max(floor, ceil)))
}
