package api

import (
	"net/netip"
	"time"

	"github.com/multihome/multihome/monitor"
)

// Link is one link's status as the API serves it: monitor.Status with its
// enumerations as strings, so clients decode it without the monitor
// package, plus what policies derive from it.
type Link struct {
	Link      string `json:"link"`
	Interface string `json:"interface"`
	// State is the effective state (unknown, up, degraded, down); Health
	// the probes' verdict before the operator's Admin override (none,
	// down, drain).
	State     string `json:"state"`
	Health    string `json:"health"`
	Admin     string `json:"admin"`
	HoldDown  bool   `json:"hold_down"`
	Carrier   bool   `json:"carrier"`
	Saturated bool   `json:"saturated"`
	// Holds are other subsystems' verdicts keeping the link down, each
	// "source: reason" (e.g. a BGP neighbour with require_default that
	// sends no default route).
	Holds []string `json:"holds,omitempty"`
	// Usable: existing traffic may use the link; AcceptsNew: new flows may.
	Usable     bool `json:"usable"`
	AcceptsNew bool `json:"accepts_new"`

	RTT    time.Duration `json:"rtt_ns"`
	RTTP50 time.Duration `json:"rtt_p50_ns"`
	RTTP95 time.Duration `json:"rtt_p95_ns"`
	Jitter time.Duration `json:"jitter_ns"`
	Loss   float64       `json:"loss"`

	RateDown  uint64  `json:"rate_down_bps"`
	RateUp    uint64  `json:"rate_up_bps"`
	UtilDown  float64 `json:"util_down"`
	UtilUp    float64 `json:"util_up"`
	BytesDown uint64  `json:"bytes_down"`
	BytesUp   uint64  `json:"bytes_up"`

	TargetsUp int      `json:"targets_up"`
	Targets   []Target `json:"targets"`

	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`

	// Address4 and Address6 are the link's addresses in force, configured
	// or learned from the interface ("" while unknown); Gateway4 and
	// Gateway6 its next hops in force, configured or (gateway6) learned
	// from router advertisements; Warnings what needs an address of the
	// link not known yet.
	Address4 string   `json:"address4"`
	Address6 string   `json:"address6"`
	Gateway4 string   `json:"gateway4"`
	Gateway6 string   `json:"gateway6"`
	Warnings []string `json:"warnings,omitempty"`
}

// Target is one probe target's status (monitor.TargetStatus).
type Target struct {
	Type      string        `json:"type"`
	Target    string        `json:"target"`
	Up        bool          `json:"up"`
	RTT       time.Duration `json:"rtt_ns"`
	Loss      float64       `json:"loss"`
	Sent      uint64        `json:"sent"`
	Lost      uint64        `json:"lost"`
	LastError string        `json:"last_error,omitempty"`
}

func linkOf(s monitor.Status) Link {
	l := Link{
		Link: s.Link, Interface: s.Interface,
		State: s.State.String(), Health: s.Health.String(), Admin: s.Admin.String(),
		HoldDown: s.HoldDown, Carrier: s.Carrier, Saturated: s.Saturated, Holds: s.Holds,
		Usable: s.Usable(), AcceptsNew: s.AcceptsNew(),
		RTT: s.RTT, RTTP50: s.RTTP50, RTTP95: s.RTTP95, Jitter: s.Jitter, Loss: s.Loss,
		RateDown: s.RateDown, RateUp: s.RateUp, UtilDown: s.UtilDown, UtilUp: s.UtilUp,
		BytesDown: s.BytesDown, BytesUp: s.BytesUp,
		TargetsUp: s.TargetsUp, Targets: make([]Target, len(s.Targets)),
		Since: s.Since, Reason: s.Reason,
		Address4: addrString(s.Address4), Address6: addrString(s.Address6),
		Gateway4: addrString(s.Gateway4), Gateway6: addrString(s.Gateway6), Warnings: s.Warnings,
	}
	for i, t := range s.Targets {
		l.Targets[i] = Target(t)
	}
	return l
}

// Overview is the answer of GET /api/v1/status.
type Overview struct {
	Time time.Time `json:"time"`
	// Health sums the links up: "ok" when every link is up, "degraded"
	// when some are not but traffic still has a usable link, "down" when
	// none is usable.
	Health string `json:"health"`
	// Links counts the links; Healthy those up; Usable those up or
	// degraded; Draining and AdminDown those under an operator override.
	Links     int `json:"links"`
	Healthy   int `json:"healthy"`
	Usable    int `json:"usable"`
	Degraded  int `json:"degraded"`
	Down      int `json:"down"`
	Unknown   int `json:"unknown"`
	Draining  int `json:"draining"`
	AdminDown int `json:"admin_down"`
	// Started is when the API server started.
	Started time.Time     `json:"started"`
	Summary []LinkSummary `json:"link_summary"`
}

// LinkSummary is one link in the overview.
type LinkSummary struct {
	Link         string        `json:"link"`
	Interface    string        `json:"interface"`
	State        string        `json:"state"`
	Admin        string        `json:"admin"`
	HoldDown     bool          `json:"hold_down"`
	Saturated    bool          `json:"saturated"`
	RTT          time.Duration `json:"rtt_ns"`
	Loss         float64       `json:"loss"`
	UtilDown     float64       `json:"util_down"`
	UtilUp       float64       `json:"util_up"`
	RateDown     uint64        `json:"rate_down_bps"`
	RateUp       uint64        `json:"rate_up_bps"`
	TargetsUp    int           `json:"targets_up"`
	TargetsTotal int           `json:"targets_total"`
	Since        time.Time     `json:"since"`
	Reason       string        `json:"reason"`
	// Address4 and Address6 are the link's addresses in force, configured
	// or learned from the interface ("" while unknown); Gateway4 and
	// Gateway6 its next hops in force (see Link); Warnings what needs an
	// address of the link not known yet.
	Address4 string   `json:"address4,omitempty"`
	Address6 string   `json:"address6,omitempty"`
	Gateway4 string   `json:"gateway4,omitempty"`
	Gateway6 string   `json:"gateway6,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func overviewOf(snap []monitor.Status, now, started time.Time) Overview {
	o := Overview{Time: now, Started: started, Links: len(snap), Summary: make([]LinkSummary, 0, len(snap))}
	for _, s := range snap {
		switch s.State {
		case monitor.Up:
			o.Healthy++
		case monitor.Degraded:
			o.Degraded++
		case monitor.Down:
			o.Down++
		default:
			o.Unknown++
		}
		if s.Usable() {
			o.Usable++
		}
		switch s.Admin {
		case monitor.AdminDrain:
			o.Draining++
		case monitor.AdminDown:
			o.AdminDown++
		}
		o.Summary = append(o.Summary, LinkSummary{
			Link: s.Link, Interface: s.Interface, State: s.State.String(), Admin: s.Admin.String(),
			HoldDown: s.HoldDown, Saturated: s.Saturated, RTT: s.RTT, Loss: s.Loss,
			UtilDown: s.UtilDown, UtilUp: s.UtilUp, RateDown: s.RateDown, RateUp: s.RateUp,
			TargetsUp: s.TargetsUp, TargetsTotal: len(s.Targets), Since: s.Since, Reason: s.Reason,
			Address4: addrString(s.Address4), Address6: addrString(s.Address6),
			Gateway4: addrString(s.Gateway4), Gateway6: addrString(s.Gateway6), Warnings: s.Warnings,
		})
	}
	switch {
	case o.Links > 0 && o.Healthy == o.Links:
		o.Health = "ok"
	case o.Usable > 0:
		o.Health = "degraded"
	default:
		o.Health = "down"
	}
	return o
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
