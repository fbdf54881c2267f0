package monitor

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/probe"
)

// settings are a link's health settings with every default resolved.
type settings struct {
	interval                   time.Duration
	timeout, floor, maxTO      time.Duration
	quorum, downAfter, upAfter int
	holdDown, window           time.Duration
	degraded, recovered        thresholds
	sample                     time.Duration
	satThreshold, satClear     float64
	satAfter                   time.Duration
	capDown, capUp             uint64
}

type thresholds struct {
	loss   float64 // 0 = off
	rtt    time.Duration
	jitter time.Duration
}

// Built-in defaults, the same as the config loader's; applied here too so
// that configs built in Go behave like loaded ones.
var defaultHealth = config.Health{
	Interval:     config.Duration(200 * time.Millisecond),
	TimeoutFloor: config.Duration(100 * time.Millisecond),
	MaxTimeout:   config.Duration(time.Second),
	MinTargetsUp: 1,
	DownAfter:    3,
	UpAfter:      5,
	HoldDown:     config.Duration(2 * time.Second),
	Window:       config.Duration(10 * time.Second),
	Degraded:     config.Quality{Loss: 0.10},
	Recovered:    config.Quality{Loss: 0.05},
	Saturation: config.Saturation{
		Sample:    config.Duration(250 * time.Millisecond),
		Threshold: 0.90,
		Clear:     0.75,
		After:     config.Duration(2 * time.Second),
	},
}

// resolve fills the zero fields of h from def.
func resolveHealth(hs ...config.Health) config.Health {
	var r config.Health
	for _, h := range hs {
		fill := func(d *config.Duration, v config.Duration) {
			if *d == 0 {
				*d = v
			}
		}
		fillI := func(d *int, v int) {
			if *d == 0 {
				*d = v
			}
		}
		fillP := func(d *config.Percent, v config.Percent) {
			if *d == 0 {
				*d = v
			}
		}
		fill(&r.Interval, h.Interval)
		fill(&r.Timeout, h.Timeout)
		fill(&r.TimeoutFloor, h.TimeoutFloor)
		fill(&r.MaxTimeout, h.MaxTimeout)
		fillI(&r.MinTargetsUp, h.MinTargetsUp)
		fillI(&r.DownAfter, h.DownAfter)
		fillI(&r.UpAfter, h.UpAfter)
		fill(&r.HoldDown, h.HoldDown)
		fill(&r.Window, h.Window)
		fillP(&r.Degraded.Loss, h.Degraded.Loss)
		fill(&r.Degraded.RTT, h.Degraded.RTT)
		fill(&r.Degraded.Jitter, h.Degraded.Jitter)
		fillP(&r.Recovered.Loss, h.Recovered.Loss)
		fill(&r.Recovered.RTT, h.Recovered.RTT)
		fill(&r.Recovered.Jitter, h.Recovered.Jitter)
		fill(&r.Saturation.Sample, h.Saturation.Sample)
		fillP(&r.Saturation.Threshold, h.Saturation.Threshold)
		fillP(&r.Saturation.Clear, h.Saturation.Clear)
		fill(&r.Saturation.After, h.Saturation.After)
	}
	return r
}

func linkSettings(cfg *config.Config, l config.Link) settings {
	h := resolveHealth(l.Health, cfg.Defaults.Health, defaultHealth)
	s := settings{
		interval:     h.Interval.D(),
		timeout:      h.Timeout.D(),
		floor:        h.TimeoutFloor.D(),
		maxTO:        h.MaxTimeout.D(),
		quorum:       h.MinTargetsUp,
		downAfter:    h.DownAfter,
		upAfter:      h.UpAfter,
		holdDown:     h.HoldDown.D(),
		window:       h.Window.D(),
		degraded:     thresholds{float64(h.Degraded.Loss), h.Degraded.RTT.D(), h.Degraded.Jitter.D()},
		recovered:    thresholds{float64(h.Recovered.Loss), h.Recovered.RTT.D(), h.Recovered.Jitter.D()},
		sample:       h.Saturation.Sample.D(),
		satThreshold: float64(h.Saturation.Threshold),
		satClear:     float64(h.Saturation.Clear),
		satAfter:     h.Saturation.After.D(),
		capDown:      uint64(l.Capacity.Down),
		capUp:        uint64(l.Capacity.Up),
	}
	// As the config loader does: RTT and jitter without their own
	// recovery threshold recover at 80 % of the degradation threshold; no
	// recovery threshold may be above its degradation threshold.
	if s.recovered.loss == 0 || s.recovered.loss > s.degraded.loss {
		s.recovered.loss = s.degraded.loss
	}
	if s.recovered.rtt == 0 || s.recovered.rtt > s.degraded.rtt {
		s.recovered.rtt = s.degraded.rtt * 8 / 10
	}
	if s.recovered.jitter == 0 || s.recovered.jitter > s.degraded.jitter {
		s.recovered.jitter = s.degraded.jitter * 8 / 10
	}
	if s.satClear > s.satThreshold {
		s.satClear = s.satThreshold
	}
	if n := len(l.Probes); s.quorum > n && n > 0 {
		s.quorum = n
	}
	s.floor = min(s.floor, s.maxTO)
	return s
}

// probeResult is one probe's outcome, as the prober goroutines report it.
type probeResult struct {
	target int
	sent   time.Time // when the probe was sent
	at     time.Time // when the result came in
	rtt    time.Duration
	err    error
}

// target is what the monitor knows about one probe target of a link.
type target struct {
	typ, addr string
	est       rttEstimator
	// latest is the sent time of the newest result; up says whether it
	// succeeded.
	latest     time.Time
	up         bool
	consecFail int       // consecutive failures
	failStart  time.Time // sent time of the first of them
	lastOK     time.Time // sent time of the newest success
	prevRTT    time.Duration
	hasPrev    bool
	sent, lost uint64
	lastErr    string
	silent     bool // failing on its own while others answer
	// backoff doubles the timeout after a timeout while the link carries
	// traffic (RFC 6298 5.5), until the target answers again.
	backoff int
}

// decision is a change of a link, for the event bus and the log.
type decision struct {
	at       time.Time
	kind     Kind
	from, to State
	reason   string
	// publish is false for changes that do not show on the bus: health
	// changes masked by an admin override, failure verdicts held on
	// passive evidence.
	publish bool
	msg     string
}

// linkState is one link's state machine and measurements. It is owned by
// the monitor's loop goroutine and never shared; it takes time as an
// argument so that tests drive it with a fake clock.
type linkState struct {
	name, iface string
	cfg         config.Link
	s           settings
	targets     []*target
	win         window
	hist        history
	rtt         rttEstimator

	health      State
	admin       Admin
	adminReason string
	since       time.Time
	reason      string
	// reasonUp is how many targets answered when reason was written: the
	// status adds the live count when it differs (liveReason).
	reasonUp int

	carrier      bool
	carrierKnown bool
	carrierSince time.Time // results of probes sent before are ignored

	// holds keep the link down whatever the probes say, by source (another
	// subsystem's verdict, e.g. a BGP neighbour that stopped sending the
	// default route); probes sent before heldSince are ignored.
	holds     map[string]string
	heldSince time.Time

	// Failure streak (by probe send time) and quorum streak.
	fail       int
	pending    []histEntry // the streak's failures
	failStart  time.Time
	failSeen   time.Time // when the streak's first failure came in
	failOutage bool      // the current streak took the link down
	// The last outage streak, by probe send time: late failures of
	// probes sent during it are part of it.
	outageFrom, outageTo time.Time
	lastOK               time.Time
	lastErr              string
	quorumFail           int
	quorumBegan          time.Time // sent time of the quorum streak's first probe
	quorumSeen           time.Time // when its result came in
	// held: the streak reached its length but the link kept receiving
	// traffic (passive evidence, alive.go): the verdict is postponed.
	held bool
	// rxs are recent readings of the interface's received-bytes counter.
	rxs []rxSample
	// Recovery.
	downAt    time.Time
	up        int
	holdDown  bool
	holdUntil time.Time

	sat satState

	out []decision
}

func newLinkState(cfg *config.Config, l config.Link, now time.Time) *linkState {
	ls := &linkState{name: l.Name, iface: l.Interface, carrier: true, since: now, reason: "starting"}
	ls.configure(cfg, l)
	return ls
}

// configure applies a link's (new) config. It keeps the link's state; a
// changed probe list resets the per-target measurements.
func (l *linkState) configure(cfg *config.Config, lc config.Link) {
	old := l.cfg
	l.cfg = lc
	if old.Interface != lc.Interface {
		// Another interface's counters: start over.
		l.rxs, l.sat.have = nil, false
	}
	l.iface = lc.Interface
	l.s = linkSettings(cfg, lc)
	l.win.d = l.s.window
	if !slices.Equal(old.Probes, lc.Probes) || l.targets == nil {
		l.targets = nil
		for _, p := range lc.Probes {
			typ := string(p.Type)
			if typ == "" {
				typ = string(config.ProbeICMP)
			}
			l.targets = append(l.targets, &target{typ: typ, addr: p.Target})
		}
		l.win.s = nil
		l.hist = history{}
		l.fail, l.pending, l.failOutage, l.quorumFail, l.up = 0, nil, false, 0, 0
		l.holdDown, l.held = false, false
	}
}

// slot is the time between two probes of the link.
func (l *linkState) slot() time.Duration {
	return l.s.interval / time.Duration(max(1, len(l.targets)))
}

// maxStreak bounds the adaptive streak: never more slots than a window.
func (l *linkState) maxStreak() int {
	return max(l.s.downAfter, int(l.s.window/max(l.slot(), time.Millisecond)))
}

// timeout returns the probe timeout for target i: its RTO, doubled for
// each timeout in a row while the link carried traffic (backoff).
func (l *linkState) timeout(i int) time.Duration {
	if l.s.timeout > 0 {
		return l.s.timeout
	}
	t := l.targets[i]
	to := t.est.rto(l.s.floor, l.s.maxTO)
	for range t.backoff {
		to = min(l.s.maxTO, 2*to)
	}
	return to
}

// State is the effective state: health unless forced down.
func (l *linkState) state() State {
	if l.admin == AdminDown {
		return Down
	}
	return l.health
}

func (l *linkState) quorum() int { return max(1, min(l.s.quorum, len(l.targets))) }

func (l *linkState) targetsUp() int {
	n := 0
	for _, t := range l.targets {
		if t.up {
			n++
		}
	}
	return n
}

// background returns p̂, the rate at which this link loses probes while
// it works: the larger of the failure rate of the last historyLen slots
// (quick to follow a change) and the loss over the window (steadier),
// both without the current failure streak, outages and silent targets.
func (l *linkState) background() float64 { return l.backgroundWithout(-1) }

// backgroundWithout is background over the targets other than skip.
func (l *linkState) backgroundWithout(skip int) float64 {
	p := l.hist.rate(skip)
	var n, lost int
	for _, s := range l.win.s {
		if s.target == skip || s.silent || s.outage || (s.fail && l.fail > 0 && !s.sent.Before(l.failStart)) {
			continue
		}
		n++
		if s.fail {
			lost++
		}
	}
	if n >= historyLen {
		p = max(p, float64(lost)/float64(n))
	}
	return p
}

// needDown is the failure streak that takes a working link down now.
func (l *linkState) needDown() int {
	return streakNeeded(l.background(), falseDownP, l.s.downAfter, l.maxStreak())
}

// needReset is the failure streak that restarts a recovering link's count.
func (l *linkState) needReset() int {
	return streakNeeded(l.background(), recoverP, 1, l.maxStreak())
}

func errString(err error) string {
	var re *probe.ResolveError
	if errors.Is(err, probe.ErrTimeout) && !errors.As(err, &re) {
		return "timeout"
	}
	return err.Error()
}

// result takes one probe result: the bookkeeping (the target, the link's
// failure streak, the window, the quorum streak), then what the evidence
// amounts to for the state machine (judge).
func (l *linkState) result(r probeResult) {
	if r.target < 0 || r.target >= len(l.targets) {
		return
	}
	if !l.carrier || r.sent.Before(l.carrierSince) {
		return // no carrier: the probe says nothing new
	}
	if len(l.holds) > 0 || r.sent.Before(l.heldSince) {
		return // held down by another subsystem's verdict
	}
	s := l.recordTarget(r)
	s.congested = l.congested()
	l.recordStreak(r, &s)
	l.win.add(s)
	l.recordQuorum(r)
	l.judge(r, s.silent)
}

// recordTarget updates the target's measurements with r and returns the
// window sample for it (silent when the target is down on its own).
func (l *linkState) recordTarget(r probeResult) sample {
	t := l.targets[r.target]
	now := r.at
	ok := r.err == nil
	t.sent++
	s := sample{at: now, target: r.target, fail: !ok, sent: r.sent}
	if !r.sent.Before(t.latest) {
		t.latest = r.sent
		t.up = ok
	}
	if ok {
		t.est.add(r.rtt)
		l.rtt.add(r.rtt)
		s.rtt = r.rtt
		if t.hasPrev {
			s.jit = r.rtt - t.prevRTT
			if s.jit < 0 {
				s.jit = -s.jit
			}
			s.hasJit = true
		}
		t.prevRTT, t.hasPrev = r.rtt, true
		t.consecFail = 0
		t.backoff = 0
		if r.sent.After(t.lastOK) {
			t.lastOK = r.sent
		}
		t.silent = false
		return s
	}
	t.lost++
	t.lastErr = errString(r.err)
	t.hasPrev = false
	// A timeout while the link receives traffic may be an answer still
	// waiting in a queue: like TCP (RFC 6298 5.5), give the target's next
	// probes twice as long, up to max_timeout, until it answers. On a link
	// that receives nothing there is no queue to wait for, and no backoff
	// to slow the detection down.
	if errors.Is(r.err, probe.ErrTimeout) && t.backoff < maxBackoff && l.rxFlowing(now) {
		t.backoff++
	}
	if t.consecFail == 0 {
		t.failStart = r.sent
	}
	t.consecFail++
	// A target that keeps failing while another answers is down on its
	// own: its failures say nothing about the link. "Keeps failing": a run
	// the other targets' loss makes improbable (DownAfter on a clean link);
	// "while another answers": a probe sent less than one interval before
	// this one succeeded.
	s.silent = len(l.targets) > 1 && t.consecFail >= l.s.downAfter &&
		l.otherAnsweredSince(r.target, r.sent.Add(-l.s.interval)) &&
		(t.silent || t.consecFail >= streakNeeded(l.backgroundWithout(r.target), falseDownP, l.s.downAfter, l.maxStreak()))
	if s.silent && !t.silent {
		l.silence(r.target)
	}
	t.silent = s.silent
	return s
}

// recordStreak updates the link's failure streak, ordered by send time: a
// failure of a probe sent before the newest success does not extend it.
// It marks s as part of an outage when it is.
func (l *linkState) recordStreak(r probeResult, s *sample) {
	h := histEntry{fail: s.fail, target: r.target, sent: r.sent}
	switch {
	case !s.fail:
		if r.sent.After(l.failStart) {
			// The streak is over. A streak that took the link down was
			// an outage, not background loss.
			if !l.failOutage {
				for _, p := range l.pending {
					l.hist.add(p)
				}
			} else {
				l.outageFrom, l.outageTo = l.failStart, r.sent
			}
			l.pending, l.fail, l.failOutage = l.pending[:0], 0, false
		}
		l.hist.add(h)
		if r.sent.After(l.lastOK) {
			l.lastOK = r.sent
		}
	case s.silent:
	case r.sent.Before(l.lastOK):
		// Late news: a probe sent after this one succeeded already. Sent
		// during the last outage, it belongs to it.
		if !r.sent.Before(l.outageFrom) && r.sent.Before(l.outageTo) {
			s.outage = true
		} else {
			l.hist.add(h)
		}
	default:
		if l.fail == 0 {
			l.failStart, l.failSeen = r.sent, r.at
		}
		l.fail++
		l.pending = append(l.pending, h)
		l.lastErr = l.targets[r.target].lastErr
		s.outage = l.failOutage
	}
}

// recordQuorum counts consecutive results after which fewer than the
// quorum of targets answer.
func (l *linkState) recordQuorum(r probeResult) {
	if l.targetsUp() >= l.quorum() {
		l.quorumFail = 0
		return
	}
	if l.quorumFail == 0 {
		l.quorumBegan, l.quorumSeen = r.sent, r.at
	}
	l.quorumFail++
}

// judge works out what the evidence after r amounts to, and moves the
// link by the table (fire).
func (l *linkState) judge(r probeResult, silent bool) {
	now := r.at
	up, q := l.targetsUp(), l.quorum()
	if l.phase() == pDown || l.phase() == pHoldDown {
		l.judgeRecovery(r, silent)
		return
	}
	need := l.needDown()
	if l.fail >= need || l.quorumFail >= need {
		// Before declaring the link down, ask its byte counters whether
		// anything kept arriving since the streak began.
		began, seen := l.failStart, l.failSeen
		if l.fail < need {
			began, seen = l.quorumBegan, l.quorumSeen
		}
		why, hold := l.aliveCheck(now, began, seen)
		if !hold {
			reason := l.failureEvidence(need)
			if why != "" {
				reason += "; " + why
			}
			l.goDown(now)
			l.fire(now, inFailStreak, reason)
			return
		}
		if !l.held {
			l.held = true
			l.fire(now, inFailHeld, fmt.Sprintf("probes failing (%s) but %s: congested, not down", l.failureEvidence(need), why))
		}
	} else {
		l.held = false
	}
	if l.health == Unknown {
		if up >= q {
			l.fire(now, inQuorum, fmt.Sprintf("%d/%d targets answering (quorum %d)", up, len(l.targets), q))
		}
		return
	}
	l.evalQuality(now)
}

// judgeRecovery is judge for a link that is down: a failure streak
// restarts the count, good probes with quorum prove the link.
func (l *linkState) judgeRecovery(r probeResult, silent bool) {
	now, ok := r.at, r.err == nil
	up, q := l.targetsUp(), l.quorum()
	reset := l.needReset()
	if (!ok && !silent && l.fail >= reset) || l.quorumFail >= reset {
		l.fire(now, inReset, fmt.Sprintf("failure during the hold-down: %s; %d successful probes needed again", l.failureEvidence(reset), l.s.upAfter))
		l.up = 0
		return
	}
	if !ok || up < q || r.sent.Before(l.downAt) {
		return
	}
	l.up++
	if l.holdDown || l.up < l.s.upAfter {
		return
	}
	ev := fmt.Sprintf("%d successful probes, %d/%d targets answering (quorum %d)", l.up, up, len(l.targets), q)
	if l.s.holdDown <= 0 {
		l.recover(now, ev)
		return
	}
	l.fire(now, inProven, fmt.Sprintf("%s; hold-down %v", ev, l.s.holdDown))
}

// silence takes back the failures of target i's current streak, now
// that the target is known to be down on its own: out of the loss, the
// background failure rate and the link's failure streak.
func (l *linkState) silence(i int) {
	since := l.targets[i].failStart
	for k := range l.win.s {
		if s := &l.win.s[k]; s.target == i && s.fail && !s.sent.Before(since) {
			s.silent = true
		}
	}
	l.hist.silence(i, since)
	kept := l.pending[:0]
	for _, p := range l.pending {
		if p.target != i || p.sent.Before(since) {
			kept = append(kept, p)
		}
	}
	l.pending = kept
	l.fail = len(kept)
	if l.fail > 0 {
		l.failStart = kept[0].sent
	}
}

// otherAnsweredSince reports whether a target other than i succeeded with
// a probe sent after since.
func (l *linkState) otherAnsweredSince(i int, since time.Time) bool {
	for j, t := range l.targets {
		if j != i && t.lastOK.After(since) {
			return true
		}
	}
	return false
}

func (l *linkState) failureEvidence(need int) string {
	var b strings.Builder
	up, q := l.targetsUp(), l.quorum()
	if l.fail < need && up < q {
		fmt.Fprintf(&b, "%d/%d targets answering (quorum %d) for %d consecutive probes", up, len(l.targets), q, l.quorumFail)
	} else {
		fmt.Fprintf(&b, "%d consecutive failed probes", l.fail)
		if need > l.s.downAfter {
			fmt.Fprintf(&b, " (%d needed at %.0f%% recent loss)", need, 100*l.background())
		}
		fmt.Fprintf(&b, ", %d/%d targets answering (quorum %d)", up, len(l.targets), q)
	}
	if l.lastErr != "" {
		fmt.Fprintf(&b, ", last error: %s", l.lastErr)
	}
	return b.String()
}

// goDown is the bookkeeping of a failure streak that takes the link down.
func (l *linkState) goDown(now time.Time) {
	l.held = false
	// The streak was an outage, not loss of a working link: keep it out
	// of the loss figures and of the background failure rate.
	l.failOutage = true
	for i := range l.win.s {
		s := &l.win.s[i]
		if s.fail && !s.silent && !s.sent.Before(l.failStart) {
			s.outage = true
		}
	}
	l.up, l.downAt = 0, now
}

// recover ends a recovery: Up, or Degraded if the window says so.
func (l *linkState) recover(now time.Time, evidence string) {
	l.up = 0
	in := inRecovered
	q := l.win.quality(true)
	if why, bad := l.degradedBy(q); bad && q.n >= l.minQualitySamples() {
		in = inRecoveredLossy
		evidence += "; " + why
	}
	l.fire(now, in, evidence)
}

// tick handles deadlines: the end of a hold-down.
func (l *linkState) tick(now time.Time) {
	if l.holdDown && !now.Before(l.holdUntil) {
		up := l.targetsUp()
		l.recover(now, fmt.Sprintf("hold-down of %v passed without failure, %d/%d targets answering", l.s.holdDown, up, len(l.targets)))
	}
}

// deadline is the next time tick must run (zero if none).
func (l *linkState) deadline() time.Time {
	if l.holdDown {
		return l.holdUntil
	}
	return time.Time{}
}

func (l *linkState) minQualitySamples() int {
	return max(10, l.maxStreak()/4)
}

func (l *linkState) evalQuality(now time.Time) {
	q := l.win.quality(true)
	if q.n < l.minQualitySamples() {
		return
	}
	switch l.health {
	case Up:
		if why, bad := l.degradedBy(q); bad {
			l.fire(now, inQualityBad, why)
		}
	case Degraded:
		if why, good := l.recoveredBy(q); good {
			l.fire(now, inQualityGood, why)
		}
	}
}

func (l *linkState) degradedBy(q quality) (string, bool) {
	d := l.s.degraded
	var why []string
	if d.loss > 0 && q.loss > d.loss {
		why = append(why, fmt.Sprintf("loss %.1f%% > %s", 100*q.loss, pct(d.loss)))
	}
	if d.rtt > 0 && q.p50 > d.rtt {
		why = append(why, fmt.Sprintf("rtt p50 %v > %v", round(q.p50), d.rtt))
	}
	if d.jitter > 0 && q.jitter > d.jitter {
		why = append(why, fmt.Sprintf("jitter %v > %v", round(q.jitter), d.jitter))
	}
	if len(why) == 0 {
		return "", false
	}
	return fmt.Sprintf("%s over the last %v (%d probes)", strings.Join(why, ", "), l.s.window, q.n), true
}

func (l *linkState) recoveredBy(q quality) (string, bool) {
	r := l.s.recovered
	if (r.loss > 0 && q.loss > r.loss) || (r.rtt > 0 && q.p50 > r.rtt) || (r.jitter > 0 && q.jitter > r.jitter) {
		return "", false
	}
	why := []string{fmt.Sprintf("loss %.1f%%", 100*q.loss)}
	if r.loss > 0 {
		why[0] += " ≤ " + pct(r.loss)
	}
	if r.rtt > 0 {
		why = append(why, fmt.Sprintf("rtt p50 %v ≤ %v", round(q.p50), r.rtt))
	}
	if r.jitter > 0 {
		why = append(why, fmt.Sprintf("jitter %v ≤ %v", round(q.jitter), r.jitter))
	}
	return fmt.Sprintf("%s over the last %v (%d probes)", strings.Join(why, ", "), l.s.window, q.n), true
}

func pct(f float64) string {
	return fmt.Sprintf("%s%%", trimFloat(100*f))
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// phase is where the link is in the state machine's table.
func (l *linkState) phase() phase {
	switch l.health {
	case Up:
		return pUp
	case Degraded:
		return pDegraded
	case Down:
		if l.holdDown {
			return pHoldDown
		}
		return pDown
	}
	return pUnknown
}

// fire moves the link by the table for input in (nothing if the table
// has no row for its phase and in); reason explains the move. The table
// says where to go and which event to record; fire carries it out.
func (l *linkState) fire(now time.Time, in input, reason string) {
	t, ok := next(l.phase(), in)
	if !ok {
		return
	}
	if t.to == pHoldDown && t.from != pHoldDown {
		l.holdUntil = now.Add(l.s.holdDown)
	}
	l.holdDown = t.to == pHoldDown
	st := l.state()
	switch t.event {
	case evHeld:
		l.out = append(l.out, decision{at: now, kind: StateChanged, from: st, to: st, msg: "link failure verdict held", reason: reason})
	case evStarted:
		l.out = append(l.out, decision{at: now, kind: HoldDownStarted, from: st, to: st, publish: true, reason: reason})
	case evAborted:
		l.out = append(l.out, decision{at: now, kind: HoldDownAborted, from: st, to: st, publish: true, reason: reason})
	}
	l.setHealth(now, t.to.health(), reason) // StateChanged when the state changes
}

// setHealth changes the link's health and records the decision.
func (l *linkState) setHealth(now time.Time, h State, reason string) {
	if h == l.health {
		return
	}
	from := l.state()
	oldHealth := l.health
	l.health = h
	to := l.state()
	if from != to {
		l.since, l.reason, l.reasonUp = now, reason, l.targetsUp()
		l.out = append(l.out, decision{at: now, kind: StateChanged, from: from, to: to, reason: reason, publish: true})
		return
	}
	l.out = append(l.out, decision{at: now, kind: StateChanged, from: oldHealth, to: h, reason: reason,
		msg: "link health changed under admin override"})
}

// setCarrier takes the interface's carrier (and presence) from netlink.
func (l *linkState) setCarrier(now time.Time, up bool, why string) {
	if l.carrierKnown && l.carrier == up {
		return
	}
	was := l.carrierKnown
	l.carrierKnown, l.carrier = true, up
	if up {
		l.carrierSince = now
		if was {
			st := l.state()
			l.out = append(l.out, decision{at: now, kind: StateChanged, from: st, to: st, msg: "carrier back",
				reason: fmt.Sprintf("carrier back on %s: probes must prove the link (%d successes, hold-down %v)", l.iface, l.s.upAfter, l.s.holdDown)})
		}
		return
	}
	l.outage(now, why)
}

// setHold keeps the link down (on) for source, or lets go of that hold.
// The first hold is an outage; when the last one goes, the probes must
// prove the link again (up_after successes, then the hold-down), as after
// a carrier loss.
func (l *linkState) setHold(now time.Time, source, reason string, on bool) {
	if on {
		if r, ok := l.holds[source]; ok && r == reason {
			return
		}
		first := len(l.holds) == 0
		if l.holds == nil {
			l.holds = map[string]string{}
		}
		l.holds[source] = reason
		if first {
			l.outage(now, reason)
		}
		return
	}
	if _, ok := l.holds[source]; !ok {
		return
	}
	delete(l.holds, source)
	if len(l.holds) > 0 {
		return
	}
	l.heldSince = now
	st := l.state()
	l.out = append(l.out, decision{at: now, kind: StateChanged, from: st, to: st, msg: "hold released",
		reason: fmt.Sprintf("%s released its hold: probes must prove the link (%d successes, hold-down %v)", source, l.s.upAfter, l.s.holdDown)})
}

// holdList returns the holds as "source: reason", sorted.
func (l *linkState) holdList() []string {
	var out []string
	for s, r := range l.holds {
		out = append(out, s+": "+r)
	}
	slices.Sort(out)
	return out
}

// outage marks the link down at once on evidence stronger than probes
// (carrier lost, a BFD session down): nothing goes through, so what the
// probes said is forgotten, and failures until the first success after it
// belong to this outage. Probes must then prove the link again.
func (l *linkState) outage(now time.Time, why string) {
	l.fail, l.pending, l.failOutage, l.quorumFail, l.up, l.held = 0, nil, true, 0, 0, false
	l.failStart = time.Time{}
	for _, t := range l.targets {
		t.up, t.consecFail, t.hasPrev, t.silent, t.backoff = false, 0, false, false, 0
	}
	l.downAt = now
	l.fire(now, inOutage, why)
}

// setAdmin applies an operator's override.
func (l *linkState) setAdmin(now time.Time, a Admin, reason string) {
	if a == l.admin && reason == l.adminReason {
		return
	}
	from := l.state()
	old := l.admin
	l.admin, l.adminReason = a, reason
	to := l.state()
	if old == a {
		return
	}
	why := fmt.Sprintf("operator set admin %s (was %s)", a, old)
	if reason != "" {
		why += ": " + reason
	}
	l.out = append(l.out, decision{at: now, kind: AdminChanged, from: from, to: to, reason: why, publish: true})
	if from != to {
		var r string
		switch {
		case a == AdminDown:
			r = "forced down by operator"
		default:
			r = fmt.Sprintf("operator override cleared, health is %s", l.health)
		}
		if reason != "" {
			r += ": " + reason
		}
		l.since, l.reason, l.reasonUp = now, r, l.targetsUp()
		l.out = append(l.out, decision{at: now, kind: StateChanged, from: from, to: to, reason: r, publish: true})
	}
}

// status returns the link's snapshot.
func (l *linkState) status() Status {
	q := l.win.quality(false)
	st := Status{
		Link:      l.name,
		Interface: l.iface,
		State:     l.state(),
		Health:    l.health,
		Admin:     l.admin,
		HoldDown:  l.holdDown,
		Carrier:   l.carrier,
		Holds:     l.holdList(),
		Saturated: l.sat.saturated,
		RTT:       l.rtt.srtt,
		RTTP50:    q.p50,
		RTTP95:    q.p95,
		Jitter:    q.jitter,
		Loss:      q.loss,
		RateDown:  l.sat.rateDown,
		RateUp:    l.sat.rateUp,
		UtilDown:  l.sat.utilDown,
		UtilUp:    l.sat.utilUp,
		BytesDown: l.sat.lastRx,
		BytesUp:   l.sat.lastTx,
		TargetsUp: l.targetsUp(),
		Since:     l.since,
		Reason:    l.liveReason(),
	}
	if l.health == Down {
		// A link down on its probes' failures shows the loss that took it
		// down: the window's probes, outage streaks included (its
		// decisions leave them out: that loss describes a working link).
		st.Loss = l.win.lossWithOutages()
	}
	for i, t := range l.targets {
		st.Targets = append(st.Targets, TargetStatus{
			Type:      t.typ,
			Target:    t.addr,
			Up:        t.up,
			RTT:       t.est.srtt,
			Loss:      l.win.targetLoss(i),
			Sent:      t.sent,
			Lost:      t.lost,
			LastError: t.lastErr,
		})
	}
	if math.IsNaN(st.Loss) {
		st.Loss = 0
	}
	return st
}

// liveReason is the reason of the current state, as written at the
// transition, plus the live count of answering targets when the reason
// quotes a count that is no longer true ("1/3 targets answering (quorum
// 1); now 3/3 answering").
func (l *linkState) liveReason() string {
	up := l.targetsUp()
	if up == l.reasonUp || !strings.Contains(l.reason, " targets answering") {
		return l.reason
	}
	return fmt.Sprintf("%s; now %d/%d answering", l.reason, up, len(l.targets))
}

// congested reports whether the link carries traffic at its saturation
// threshold now (or is still judged saturated): a probe lost or delayed
// now was dropped or queued behind the site's own traffic. Such results
// stay out of the loss, RTT and jitter that judge degraded, so that a link
// filled to capacity is reported saturated, not degraded (docs/monitor.md,
// "Congestion is not an outage"). Without a configured capacity the
// monitor cannot tell, and every result counts.
func (l *linkState) congested() bool {
	if l.s.capDown == 0 && l.s.capUp == 0 {
		return false
	}
	return l.sat.saturated || max(l.sat.utilDown, l.sat.utilUp) >= l.s.satThreshold
}

// satState tracks interface counters and the saturated state.
type satState struct {
	have               bool
	lastAt             time.Time
	lastRx, lastTx     uint64
	rateDown, rateUp   uint64
	utilDown, utilUp   float64
	saturated          bool
	overSince, underAt time.Time
}

// counters takes one sample of the interface's byte counters.
func (l *linkState) counters(now time.Time, rx, tx uint64) {
	l.rxAdd(now, rx)
	s := &l.sat
	if !s.have || rx < s.lastRx || tx < s.lastTx || !now.After(s.lastAt) {
		// First sample, or counters reset (interface re-created).
		s.have, s.lastAt, s.lastRx, s.lastTx = true, now, rx, tx
		return
	}
	dt := now.Sub(s.lastAt).Seconds()
	start := s.lastAt
	s.rateDown = uint64(float64(rx-s.lastRx) * 8 / dt)
	s.rateUp = uint64(float64(tx-s.lastTx) * 8 / dt)
	s.lastAt, s.lastRx, s.lastTx = now, rx, tx
	s.utilDown, s.utilUp = 0, 0
	if l.s.capDown > 0 {
		s.utilDown = float64(s.rateDown) / float64(l.s.capDown)
	}
	if l.s.capUp > 0 {
		s.utilUp = float64(s.rateUp) / float64(l.s.capUp)
	}
	u := max(s.utilDown, s.utilUp)
	if !s.saturated {
		s.underAt = time.Time{}
		if l.s.capDown == 0 && l.s.capUp == 0 || u < l.s.satThreshold {
			s.overSince = time.Time{}
			return
		}
		if s.overSince.IsZero() {
			s.overSince = start
		}
		if now.Sub(s.overSince) >= l.s.satAfter {
			s.saturated = true
			st := l.state()
			l.out = append(l.out, decision{at: now, kind: SaturationChanged, from: st, to: st, publish: true,
				reason: fmt.Sprintf("saturated: %s for %v (≥ %s)", l.utilText(), now.Sub(s.overSince).Round(time.Millisecond), pct(l.s.satThreshold))})
		}
		return
	}
	s.overSince = time.Time{}
	if u >= l.s.satClear {
		s.underAt = time.Time{}
		return
	}
	if s.underAt.IsZero() {
		s.underAt = start
	}
	if now.Sub(s.underAt) >= l.s.satAfter {
		s.saturated = false
		st := l.state()
		l.out = append(l.out, decision{at: now, kind: SaturationChanged, from: st, to: st, publish: true,
			reason: fmt.Sprintf("no longer saturated: %s for %v (< %s)", l.utilText(), now.Sub(s.underAt).Round(time.Millisecond), pct(l.s.satClear))})
		s.underAt = time.Time{}
	}
}

func (l *linkState) utilText() string {
	s := &l.sat
	return fmt.Sprintf("down %s of %s (%.0f%%), up %s of %s (%.0f%%)",
		rateText(s.rateDown), rateText(l.s.capDown), 100*s.utilDown,
		rateText(s.rateUp), rateText(l.s.capUp), 100*s.utilUp)
}

// rateText writes a rate in bit/s with three significant digits.
func rateText(r uint64) string {
	f := float64(r)
	switch {
	case f >= 1e9:
		return trimFloat(f/1e9) + "Gbit/s"
	case f >= 1e6:
		return trimFloat(f/1e6) + "Mbit/s"
	case f >= 1e3:
		return trimFloat(f/1e3) + "kbit/s"
	}
	return strconv.FormatUint(r, 10) + "bit/s"
}
