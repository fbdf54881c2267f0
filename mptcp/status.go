package mptcp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/multihome/multihome/monitor"
)

// Status is the path manager as the controller last left it: what
// GET /api/v1/mptcp, `multihome status` and the dashboard show. It is
// kept by the controller at each apply, from the endpoint dump that apply
// made anyway: reading it asks the kernel nothing.
type Status struct {
	// Time is when the controller last applied the desired state (on a
	// link event, an address change, a config or a reconcile tick).
	Time time.Time `json:"time"`
	// Limits are the kernel's per-connection limits.
	Limits Limits `json:"limits"`
	// Endpoints is the kernel's endpoint table after that apply:
	// multihome's (with their link) and the operator's.
	Endpoints []EndpointStatus `json:"endpoints"`
	// Links are the mptcp section's links, each with what it has in the
	// table and why.
	Links []LinkStatus `json:"links"`
	// Error is the last apply's error; empty when it succeeded.
	Error string `json:"error,omitempty"`
}

// EndpointStatus is one endpoint of the kernel's table.
type EndpointStatus struct {
	ID      uint8      `json:"id"`
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port,omitempty"`
	// Flags are ip mptcp's words: signal, subflow, backup, fullmesh.
	Flags []string `json:"flags"`
	// Link and Interface are the endpoint's link (multihome's
	// endpoints); Operator marks the operator's own (other IDs).
	Link      string `json:"link,omitempty"`
	Interface string `json:"interface,omitempty"`
	IfIndex   int32  `json:"ifindex,omitempty"`
	Operator  bool   `json:"operator"`
}

// LinkStatus is one link of the mptcp section.
type LinkStatus struct {
	Link      string `json:"link"`
	Interface string `json:"interface"`
	// State and Admin are the monitor's verdict the endpoints follow.
	State string `json:"state"`
	Admin string `json:"admin"`
	// Mode is what MPTCP may do with the link: "subflow" (used),
	// "backup" (only when no other subflow works) or "none".
	Mode string `json:"mode"`
	// Endpoints are the IDs of the link's endpoints in the table.
	Endpoints []int `json:"endpoints"`
	// Reason says why the link is backup or has no endpoint.
	Reason string `json:"reason,omitempty"`
}

// words splits flags as ip mptcp writes them.
func (f Flags) words() []string {
	w := strings.Fields(f.String())
	if w == nil {
		w = []string{}
	}
	return w
}

// statusOf builds the status from an apply: the links as Desired saw
// them, the desired state, and the table the manager left.
func statusOf(now time.Time, links []Link, ifaces map[string]string, want State, m *Manager, err error) Status {
	st := Status{Time: now, Endpoints: []EndpointStatus{}, Links: []LinkStatus{}}
	if err != nil {
		st.Error = err.Error()
	}
	table, limits, skipped, ok := m.Table()
	st.Limits = limits
	in := map[uint8]bool{}
	for _, ep := range table {
		es := EndpointStatus{ID: ep.ID, Address: ep.Addr, Port: ep.Port, Flags: ep.Flags.words(), IfIndex: ep.IfIndex}
		if m.owns(ep.ID) {
			es.Link = want.Names[ep.ID]
			es.Interface = ifaces[es.Link]
		} else {
			es.Operator = true
		}
		st.Endpoints = append(st.Endpoints, es)
		in[ep.ID] = true
	}
	wanted := map[string][]Endpoint{}
	for _, ep := range want.Endpoints {
		wanted[want.Names[ep.ID]] = append(wanted[want.Names[ep.ID]], ep)
	}
	for _, l := range links {
		ls := LinkStatus{Link: l.Name, Interface: ifaces[l.Name], State: l.State.String(), Admin: l.Admin.String(), Mode: "none", Endpoints: []int{}}
		for _, ep := range wanted[l.Name] {
			if in[ep.ID] {
				ls.Endpoints = append(ls.Endpoints, int(ep.ID))
			}
		}
		var notes []string
		switch {
		case l.State == monitor.Up && l.Admin != monitor.AdminDrain:
			ls.Mode = "subflow"
		case l.State == monitor.Up:
			ls.Mode, ls.Reason = "backup", "drained"
		case l.State == monitor.Degraded:
			ls.Mode, ls.Reason = "backup", "degraded"
		case l.HoldDown:
			ls.Reason = "recovered, in hold-down"
		default:
			ls.Reason = "link " + l.State.String()
		}
		if ls.Mode != "none" {
			if !l.Addr4.IsValid() && !l.Addr6.IsValid() {
				notes = append(notes, "no address known")
			}
			for _, ep := range wanted[l.Name] {
				if id, held := skipped[ep.ID]; held {
					notes = append(notes, fmt.Sprintf("%s held by the operator's endpoint %d", ep.Addr, id))
				} else if ok && !in[ep.ID] {
					notes = append(notes, fmt.Sprintf("%s not in the kernel (see error)", ep.Addr))
				}
			}
			if len(ls.Endpoints) == 0 {
				ls.Mode = "none"
			}
		}
		if len(notes) > 0 {
			if ls.Reason != "" {
				notes = append([]string{ls.Reason}, notes...)
			}
			ls.Reason = strings.Join(notes, "; ")
		}
		st.Links = append(st.Links, ls)
	}
	slices.SortStableFunc(st.Endpoints, func(a, b EndpointStatus) int { return int(a.ID) - int(b.ID) })
	return st
}
