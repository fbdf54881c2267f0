package monitor

import (
	"fmt"
	"strconv"
	"time"
)

// Passive evidence of life. A link whose probes fail while bytes keep
// arriving on its interface is congested, not dead: the probes were
// dropped in a full queue or are waiting in it, and something beyond the
// link keeps answering. A blackhole stops the received bytes at once,
// apart from the ISP router's own trickle (ARP, neighbour discovery,
// router advertisements), which stays far below the thresholds here.
// docs/monitor.md ("Congestion is not an outage") explains the rule.
const (
	// aliveWindow is how far back "still receiving" looks: long enough
	// that a congested TCP flow stalled by a retransmission timeout (200
	// ms minimum on Linux) still shows, short enough that a blackhole
	// hitting a link whose failures are being held is caught in well
	// under a second.
	aliveWindow = 500 * time.Millisecond
	// aliveMinBytes is the least that counts as traffic: 32 KiB, some 22
	// full-size packets, hundreds of times what the router's own ARP,
	// neighbour discovery and advertisements amount to in a second.
	aliveMinBytes = 32 << 10
	// aliveMinBytesSlow replaces aliveMinBytes when the link's capacity
	// cannot deliver 4 × aliveMinBytes in the window (below ~8 Mbit/s for
	// the first check's ~133 ms): then a quarter of capacity × elapsed
	// counts, but never less than this.
	aliveMinBytesSlow = 4 << 10
	// aliveFrac of capacity × elapsed must arrive too: on a large link a
	// trickle is not the traffic of a congested link.
	aliveFrac = 0.10
	// aliveHoldTimeouts bounds the postponement: a streak may be held at
	// most this many max_timeouts (3 s with the defaults). By then every
	// target was probed with timeouts backed off to max_timeout: if none
	// answers while traffic flows, the answers are not queued but gone
	// (probe targets unreachable through a link that still carries other
	// traffic, probes filtered), and the link goes down.
	aliveHoldTimeouts = 3
	// rxKeep is how long counter samples are kept.
	rxKeep = 2 * aliveWindow
	// maxBackoff bounds the doublings of a target's timeout.
	maxBackoff = 5
)

// rxSample is one reading of the interface's received-bytes counter.
type rxSample struct {
	at time.Time
	rx uint64
}

// rxAdd records a reading of the received-bytes counter: from the
// periodic sampler (counters) or taken on demand when a probe fails, so
// that the verdict never rests on a stale sample.
func (l *linkState) rxAdd(at time.Time, rx uint64) {
	if n := len(l.rxs); n > 0 {
		last := l.rxs[n-1]
		if !at.After(last.at) {
			return // older than what we have: nothing new
		}
		if rx < last.rx {
			l.rxs = l.rxs[:0] // counter reset: the interface was re-created
		}
	}
	l.rxs = append(l.rxs, rxSample{at, rx})
	cut := 0
	for cut < len(l.rxs)-2 && at.Sub(l.rxs[cut].at) > rxKeep {
		cut++
	}
	if cut > 0 || len(l.rxs) > 256 {
		cut = max(cut, len(l.rxs)-256)
		l.rxs = append(l.rxs[:0], l.rxs[cut:]...)
	}
}

// rxEvidence is what the counters say about received traffic over a
// span of time.
type rxEvidence struct {
	bytes    uint64
	from, to time.Time
	need     uint64 // the bytes that count as traffic over the span
}

func (e rxEvidence) alive() bool            { return e.bytes >= e.need }
func (e rxEvidence) elapsed() time.Duration { return e.to.Sub(e.from) }

// rxSince returns the bytes received from a baseline reading taken at or
// after notBefore, at most about aliveWindow before the newest reading,
// up to the newest one. ok is false without two such readings.
func (l *linkState) rxSince(notBefore time.Time) (ev rxEvidence, ok bool) {
	n := len(l.rxs)
	if n < 2 {
		return ev, false
	}
	last := l.rxs[n-1]
	base := -1
	for i := n - 2; i >= 0; i-- {
		s := l.rxs[i]
		if s.at.Before(notBefore) {
			break
		}
		base = i
		if !s.at.After(last.at.Add(-aliveWindow)) {
			break
		}
	}
	if base < 0 {
		return ev, false
	}
	b := l.rxs[base]
	ev = rxEvidence{bytes: last.rx - b.rx, from: b.at, to: last.at}
	ev.need = l.aliveNeed(ev.elapsed())
	return ev, true
}

// aliveNeed is the number of bytes received over d that shows the link
// carries traffic: max(32 KiB, 10 % of capacity × d); on a link too slow
// to deliver 128 KiB in d, a quarter of capacity × d (at least 4 KiB)
// replaces the 32 KiB.
func (l *linkState) aliveNeed(d time.Duration) uint64 {
	need := float64(aliveMinBytes)
	if c := float64(l.s.capDown) / 8 * d.Seconds(); c > 0 {
		need = min(need, max(aliveMinBytesSlow, c/4))
		need = max(need, aliveFrac*c)
	}
	return uint64(need)
}

// rxFlowing reports whether the link received traffic over the last
// aliveWindow (for the timeout backoff).
func (l *linkState) rxFlowing(now time.Time) bool {
	ev, ok := l.rxSince(now.Add(-rxKeep))
	return ok && ev.alive() && !ev.to.Before(now.Add(-aliveWindow))
}

// holdMax is the longest a failure streak may be held on passive
// evidence.
func (l *linkState) holdMax() time.Duration {
	return aliveHoldTimeouts * l.s.maxTO
}

// aliveCheck judges a failure streak that reached its length: hold is
// true when the link kept receiving traffic since the streak's first
// failure came in (since) and the streak is younger than holdMax (it
// began, by send time, at began). why is the evidence in words for the
// log, or for the reason of the Down verdict when hold is false ("" when
// the counters could not tell).
func (l *linkState) aliveCheck(now, began, since time.Time) (why string, hold bool) {
	ev, ok := l.rxSince(since)
	if !ok {
		return "", false
	}
	got := fmt.Sprintf("%s received on %s in the last %v", bytesText(ev.bytes), l.iface, round(ev.elapsed()))
	if !ev.alive() {
		return fmt.Sprintf("only %s (%s needed): nothing comes back", got, bytesText(ev.need)), false
	}
	if d := ev.elapsed(); d > 0 {
		got += fmt.Sprintf(" (%s)", rateText(uint64(float64(ev.bytes)*8/d.Seconds())))
	}
	if d := now.Sub(began); d >= l.holdMax() {
		return fmt.Sprintf("probes unanswered for %v although %s: traffic flows but the probe targets are unreachable through it",
			round(d), got), false
	}
	return got, true
}

// bytesText writes a byte count with three significant digits.
func bytesText(b uint64) string {
	f := float64(b)
	switch {
	case f >= 1e9:
		return trimFloat(f/1e9) + " GB"
	case f >= 1e6:
		return trimFloat(f/1e6) + " MB"
	case f >= 1e3:
		return trimFloat(f/1e3) + " kB"
	}
	return strconv.FormatUint(b, 10) + " B"
}
