package bfd

import (
	"math/rand/v2"
	"time"
)

// Config is one session's parameters.
type Config struct {
	// DesiredMinTx and RequiredMinRx are our intervals once Up.
	DesiredMinTx  time.Duration
	RequiredMinRx time.Duration
	// DetectMult is our detection multiplier.
	DetectMult uint8
}

// slowTx is the least transmit interval while the session is not Up
// (RFC 5880 section 6.8.3).
const slowTx = time.Second

// Session is the state machine of one asynchronous BFD session, without
// I/O and without a clock of its own: the caller passes the time and
// sends what it is told to. Not safe for concurrent use.
type Session struct {
	cfg Config

	State      State
	Diag       Diag
	LocalDisc  uint32
	RemoteDisc uint32
	// RemoteState is the state the peer last reported.
	RemoteState State

	remoteMinRx  time.Duration // the peer's Required Min RX
	remoteMinTx  time.Duration // the peer's Desired Min TX
	remoteMult   uint8
	lastRx       time.Time
	detectAt     time.Time // zero: not armed
	nextTx       time.Time
	poll         bool // a poll sequence is in progress
	sendFinal    bool // answer the peer's poll
	sentTxAdv    time.Duration
	sentRxAdv    time.Duration
	pendingTxAdv time.Duration
}

// NewSession starts a session in Down with a random discriminator.
func NewSession(cfg Config) *Session {
	d := rand.Uint32()
	for d == 0 {
		d = rand.Uint32()
	}
	return &Session{cfg: cfg, State: Down, LocalDisc: d, remoteMinRx: time.Microsecond, remoteMult: 1}
}

// advertisedTx is the Desired Min TX we advertise: at least 1 s while
// not Up.
func (s *Session) advertisedTx() time.Duration {
	if s.State != Up {
		return max(s.cfg.DesiredMinTx, slowTx)
	}
	return s.cfg.DesiredMinTx
}

// TxInterval is the current periodic transmit interval before jitter:
// the larger of our advertised Desired Min TX and the peer's Required Min
// RX. While a poll sequence increases our interval, the old (smaller)
// value holds until the Final arrives (RFC 5880 section 6.8.3); a
// decrease applies at once.
func (s *Session) TxInterval() time.Duration {
	tx := s.advertisedTx()
	if s.poll && s.pendingTxAdv != 0 && s.pendingTxAdv < tx {
		tx = s.pendingTxAdv
	}
	return max(tx, s.remoteMinRx)
}

// DetectionTime is the peer's detect multiplier times the larger of our
// Required Min RX and the peer's Desired Min TX.
func (s *Session) DetectionTime() time.Duration {
	return time.Duration(s.remoteMult) * max(s.cfg.RequiredMinRx, s.remoteMinTx)
}

// jitter reduces an interval by 0–25 % (10–25 % with a multiplier of 1).
func (s *Session) jitter(d time.Duration) time.Duration {
	lo := 0.75
	hi := 1.0
	if s.cfg.DetectMult == 1 {
		hi = 0.9
	}
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

// Packet returns the next control packet to send and schedules the one
// after it. Call it when Due says so, or at once after Receive asked for
// an immediate answer.
func (s *Session) Packet(now time.Time) Packet {
	tx, rx := s.advertisedTx(), s.cfg.RequiredMinRx
	if (tx != s.sentTxAdv || rx != s.sentRxAdv) && s.sentTxAdv != 0 && s.State == Up && !s.poll {
		// Parameters changed while Up: announce them with a poll.
		s.poll = true
		s.pendingTxAdv = s.sentTxAdv
	}
	p := Packet{
		Version: 1, Diag: s.Diag, State: s.State, DetectMult: s.cfg.DetectMult,
		MyDisc: s.LocalDisc, YourDisc: s.RemoteDisc,
		DesiredMinTx: uint32(tx / time.Microsecond), RequiredMinRx: uint32(rx / time.Microsecond),
		Poll: s.poll && !s.sendFinal, Final: s.sendFinal,
	}
	s.sendFinal = false
	s.sentTxAdv, s.sentRxAdv = tx, rx
	s.nextTx = now.Add(s.jitter(s.TxInterval()))
	return p
}

// NextTx is when the next periodic packet is due.
func (s *Session) NextTx() time.Time { return s.nextTx }

// DetectAt is when the session times out if nothing arrives (zero when
// no detection timer runs).
func (s *Session) DetectAt() time.Time { return s.detectAt }

// Receive processes a packet that passed Parse and the TTL check
// (RFC 5880 section 6.8.6). It reports whether the state changed and
// whether a packet must be sent at once (a Final, or a state change).
func (s *Session) Receive(p Packet, now time.Time) (changed, sendNow bool) {
	if p.YourDisc != 0 && p.YourDisc != s.LocalDisc {
		return false, false
	}
	s.RemoteDisc = p.MyDisc
	s.RemoteState = p.State
	s.remoteMinTx = time.Duration(p.DesiredMinTx) * time.Microsecond
	s.remoteMinRx = max(time.Duration(p.RequiredMinRx)*time.Microsecond, time.Microsecond)
	s.remoteMult = p.DetectMult
	s.lastRx = now
	if p.Final && s.poll {
		s.poll = false
		s.pendingTxAdv = 0
	}
	if p.Poll {
		s.sendFinal = true
		sendNow = true
	}
	old := s.State
	if s.State == AdminDown {
		return false, sendNow
	}
	switch {
	case p.State == AdminDown:
		if s.State != Down {
			s.Diag = DiagNeighborDown
			s.State = Down
		}
	case s.State == Down:
		if p.State == Down {
			s.State = Init
		} else if p.State == Init {
			s.State = Up
		}
	case s.State == Init:
		if p.State == Init || p.State == Up {
			s.State = Up
		}
	case s.State == Up:
		if p.State == Down {
			s.Diag = DiagNeighborDown
			s.State = Down
		}
	}
	if s.State == Up || s.State == Init {
		s.detectAt = now.Add(s.DetectionTime())
	} else {
		s.detectAt = time.Time{}
	}
	if s.State != old {
		if s.State == Up {
			s.Diag = DiagNone
		}
		if s.State == Down {
			s.RemoteDisc = 0
			s.remoteMinRx = time.Microsecond
		}
		return true, true
	}
	return false, sendNow
}

// Tick applies the detection timer at now: Init or Up with nothing
// received within the detection time goes Down. It reports a change.
func (s *Session) Tick(now time.Time) bool {
	if s.detectAt.IsZero() || now.Before(s.detectAt) || (s.State != Up && s.State != Init) {
		return false
	}
	s.State = Down
	s.Diag = DiagDetectExpired
	s.RemoteDisc = 0
	s.remoteMinRx = time.Microsecond
	s.detectAt = time.Time{}
	s.poll = false
	return true
}
