package monitor

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a link's health as judged by the monitor.
type State int

// Link states. The zero value is Unknown: a link starts there and leaves it
// after its first verdict.
const (
	Unknown State = iota
	Up
	Degraded
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Degraded:
		return "degraded"
	case Down:
		return "down"
	}
	return "unknown"
}

// MarshalText makes states readable in JSON and logs.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	*s = v
	return err
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for _, v := range []State{Unknown, Up, Degraded, Down} {
		if v.String() == s {
			return v, nil
		}
	}
	return Unknown, fmt.Errorf("unknown link state %q", s)
}

// Admin is an operator's override of a link.
type Admin int

// Admin states.
const (
	// AdminNone: the link follows its health.
	AdminNone Admin = iota
	// AdminDown: forced down whatever its health.
	AdminDown
	// AdminDrain: keeps existing flows but takes no new ones.
	AdminDrain
)

func (a Admin) String() string {
	switch a {
	case AdminDown:
		return "down"
	case AdminDrain:
		return "drain"
	}
	return "none"
}

// MarshalText makes admin states readable in JSON and logs.
func (a Admin) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (a *Admin) UnmarshalText(b []byte) error {
	for _, v := range []Admin{AdminNone, AdminDown, AdminDrain} {
		if v.String() == string(b) {
			*a = v
			return nil
		}
	}
	return fmt.Errorf("unknown admin state %q", b)
}

// TargetStatus is what the monitor knows about one probe target.
type TargetStatus struct {
	Type   string        `json:"type"`
	Target string        `json:"target"`
	Up     bool          `json:"up"`
	RTT    time.Duration `json:"rtt_ns"` // EWMA
	Loss   float64       `json:"loss"`   // 0..1 over the window
	Sent   uint64        `json:"sent"`
	Lost   uint64        `json:"lost"`
	// LastError is the last failure's reason ("timeout", "connection refused").
	LastError string `json:"last_error,omitempty"`
}

// Status is a snapshot of one link.
type Status struct {
	Link      string `json:"link"`
	Interface string `json:"interface"`
	// State is the effective state: Health, overridden by Admin==AdminDown.
	State  State `json:"state"`
	Health State `json:"health"`
	Admin  Admin `json:"admin"`
	// HoldDown is true while a recovered link waits out its hold-down:
	// State stays Down until it ends.
	HoldDown bool `json:"hold_down"`
	Carrier  bool `json:"carrier"`
	// Holds are other subsystems' verdicts keeping the link down, each
	// "source: reason" (see Monitor.Hold).
	Holds []string `json:"holds,omitempty"`
	// Saturated: utilisation stayed over the threshold long enough.
	Saturated bool `json:"saturated"`

	RTT    time.Duration `json:"rtt_ns"` // EWMA over all targets
	RTTP50 time.Duration `json:"rtt_p50_ns"`
	RTTP95 time.Duration `json:"rtt_p95_ns"`
	Jitter time.Duration `json:"jitter_ns"`
	Loss   float64       `json:"loss"` // 0..1 over the window

	// Rates in bit/s measured from interface counters, and utilisation
	// (0..1) against the configured capacity (0 when capacity unset).
	RateDown uint64  `json:"rate_down_bps"`
	RateUp   uint64  `json:"rate_up_bps"`
	UtilDown float64 `json:"util_down"`
	UtilUp   float64 `json:"util_up"`
	// BytesDown/BytesUp are the interface's byte counters.
	BytesDown uint64 `json:"bytes_down"`
	BytesUp   uint64 `json:"bytes_up"`

	TargetsUp int            `json:"targets_up"`
	Targets   []TargetStatus `json:"targets"`

	// Since is when State last changed, Reason why.
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`

	// Filled by the daemon: the link's addresses in force (configured or
	// learned from the interface; invalid while unknown), its next hops in
	// force (configured, or gateway6 learned from router advertisements),
	// and what needs an address of the link that is not known yet.
	Address4 netip.Addr `json:"address4"`
	Address6 netip.Addr `json:"address6"`
	Gateway4 netip.Addr `json:"gateway4"`
	Gateway6 netip.Addr `json:"gateway6"`
	Warnings []string   `json:"warnings,omitempty"`
}

// Usable reports whether existing traffic may use the link.
func (s Status) Usable() bool { return s.State == Up || s.State == Degraded }

// AcceptsNew reports whether new flows may be given to the link.
func (s Status) AcceptsNew() bool { return s.Usable() && s.Admin != AdminDrain }

// Spare returns the unused fraction of the link's capacity in its busier
// direction (1 when capacity is unknown), for capacity-weighted policies.
func (s Status) Spare() float64 {
	u := max(s.UtilDown, s.UtilUp)
	if u > 1 {
		u = 1
	}
	return 1 - u
}

// Kind says what an Event reports.
type Kind int

// Event kinds.
const (
	// StateChanged: the effective State changed (From → To).
	StateChanged Kind = iota + 1
	// SaturationChanged: Status.Saturated flipped.
	SaturationChanged
	// AdminChanged: an operator changed Status.Admin.
	AdminChanged
	// HoldDownStarted: the link recovered and waits out its hold-down.
	HoldDownStarted
	// HoldDownAborted: a failure interrupted the hold-down; the link
	// stays down and must prove itself again (Status.HoldDown is false).
	HoldDownAborted
)

func (k Kind) String() string {
	switch k {
	case StateChanged:
		return "state"
	case SaturationChanged:
		return "saturation"
	case AdminChanged:
		return "admin"
	case HoldDownStarted:
		return "hold-down"
	case HoldDownAborted:
		return "hold-down-aborted"
	}
	return "unknown"
}

// MarshalText makes kinds readable in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, v := range []Kind{StateChanged, SaturationChanged, AdminChanged, HoldDownStarted, HoldDownAborted} {
		if v.String() == string(b) {
			*k = v
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Event reports a change of one link, with the evidence for it.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	Link string    `json:"link"`
	From State     `json:"from"`
	To   State     `json:"to"`
	// Reason explains the decision in one line, e.g.
	// "3 rounds with 0/3 targets answering (quorum 1)" or "carrier lost".
	Reason string `json:"reason"`
	// Status is the link's snapshot right after the change.
	Status Status `json:"status"`
}

// Source is what subsystems consume: the monitor, or a fake in tests.
type Source interface {
	// Subscribe returns a channel of events and a cancel function. The
	// channel first receives nothing: call Snapshot after subscribing to
	// learn the current state.
	Subscribe() (<-chan Event, func())
	// Snapshot returns the current status of every link, in config order.
	Snapshot() []Status
}

// StateOf returns link's effective state as src has it ("up", "down", ...),
// or "" when src does not know the link.
func StateOf(src Source, link string) string {
	for _, st := range src.Snapshot() {
		if st.Link == link {
			return st.State.String()
		}
	}
	return ""
}
