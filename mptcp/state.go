package mptcp

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// Link is what [Desired] needs to know about one link.
type Link struct {
	Name string
	// IfIndex is the link's interface index (0: unknown, not given to
	// the kernel).
	IfIndex int32
	// Addr4 and Addr6 are the link's addresses (configured, else
	// learned from the interface); an invalid one has no endpoint.
	Addr4, Addr6 netip.Addr
	State        monitor.State
	Admin        monitor.Admin
	// HoldDown: recovered, waiting out the monitor's hold-down.
	HoldDown bool
}

// State is the path manager's desired state.
type State struct {
	Limits Limits
	// Endpoints, by ID.
	Endpoints []Endpoint
	// Owned is the range of endpoint IDs multihome manages: endpoints
	// with other IDs are the operator's.
	Owned [2]uint8
	// Names maps an owned endpoint ID to its link's name.
	Names map[uint8]string
}

// Desired returns the endpoints and limits for cfg's mptcp section with
// the links in the given states. links holds the section's links (others
// are ignored). A link that is up has a subflow endpoint (plus signal if
// configured); degraded or drained, the same with backup, so MPTCP uses
// it only when no other subflow works; down, in hold-down or not yet
// judged, none.
func Desired(cfg *config.Config, links []Link) State {
	m := cfg.MPTCP
	st := State{Names: map[uint8]string{}}
	if m == nil {
		return st
	}
	st.Limits = Limits{Subflows: uint32(m.Subflows), AddAddrAccepted: uint32(m.AddAddrAccepted)}
	st.Owned = [2]uint8{uint8(m.IDBase), uint8(m.IDBase + 2*len(m.Links) - 1)}
	base := Subflow
	if m.Signal {
		base |= Signal
	}
	for i, name := range m.Links {
		j := slices.IndexFunc(links, func(l Link) bool { return l.Name == name })
		if j < 0 {
			continue
		}
		l := links[j]
		var f Flags
		switch {
		case l.State == monitor.Up && l.Admin != monitor.AdminDrain:
			f = base
		case l.State == monitor.Up || l.State == monitor.Degraded:
			f = base | Backup
		default:
			continue
		}
		for k, a := range []netip.Addr{l.Addr4, l.Addr6} {
			if !a.IsValid() {
				continue
			}
			id := uint8(m.IDBase + 2*i + k)
			st.Endpoints = append(st.Endpoints, Endpoint{ID: id, Addr: a, Flags: f, IfIndex: l.IfIndex})
			st.Names[id] = name
		}
	}
	slices.SortFunc(st.Endpoints, func(a, b Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	return st
}

// Kernel is the path manager: a [Conn], or a fake in tests.
type Kernel interface {
	Endpoints() ([]Endpoint, error)
	Add(Endpoint) error
	Del(id uint8) error
	SetFlags(id uint8, f Flags) error
	Limits() (Limits, error)
	SetLimits(Limits) error
}

// Manager applies desired states to a path manager.
type Manager struct {
	k Kernel
	// owned holds every ID range this manager was given, so that a
	// reload that moves id_base removes the endpoints of the old range.
	owned map[[2]uint8]bool
	// table and limits are the kernel's endpoints and limits as the last
	// Set left them: what it read, with its successful changes applied
	// (tableOK false when the read failed). skipped are wanted endpoints
	// whose address an operator's endpoint holds (wanted ID -> its ID).
	table   []Endpoint
	limits  Limits
	tableOK bool
	skipped map[uint8]uint8
}

// Table returns the kernel's endpoints and limits as the last Set left
// them, without asking the kernel again, and whether Set could read
// them. skipped maps a wanted endpoint ID to the ID of the operator's
// endpoint that holds its address.
func (m *Manager) Table() (eps []Endpoint, l Limits, skipped map[uint8]uint8, ok bool) {
	return slices.Clone(m.table), m.limits, maps.Clone(m.skipped), m.tableOK
}

// NewManager returns a manager of k.
func NewManager(k Kernel) *Manager { return &Manager{k: k, owned: map[[2]uint8]bool{}} }

func (m *Manager) owns(id uint8) bool {
	for r := range m.owned {
		if id >= r[0] && id <= r[1] {
			return true
		}
	}
	return false
}

// Set makes the kernel's endpoints in the owned ranges and its limits
// what want says, touching only what differs, and returns what it
// changed (one line each, as `ip mptcp` would write it). An endpoint of
// the operator's on a wanted address wins: that address is skipped.
// Set goes on after a failed change and returns every error.
func (m *Manager) Set(want State) ([]string, error) {
	if want.Owned[1] != 0 {
		m.owned[want.Owned] = true
	}
	var changes []string
	var errs []error
	if cur, err := m.k.Limits(); err != nil {
		errs = append(errs, err)
	} else if cur != want.Limits {
		m.limits = cur
		if err := m.k.SetLimits(want.Limits); err != nil {
			errs = append(errs, err)
		} else {
			m.limits = want.Limits
			changes = append(changes, fmt.Sprintf("limits set subflows %d add_addr_accepted %d", want.Limits.Subflows, want.Limits.AddAddrAccepted))
		}
	} else {
		m.limits = cur
	}
	have, err := m.k.Endpoints()
	if err != nil {
		m.tableOK = false
		return changes, errors.Join(append(errs, err)...)
	}
	// result is the kernel's table as our successful changes leave it.
	result := map[uint8]Endpoint{}
	foreign := map[netip.Addr]uint8{}
	mine := map[uint8]Endpoint{}
	for _, ep := range have {
		result[ep.ID] = ep
		if m.owns(ep.ID) {
			mine[ep.ID] = ep
		} else {
			foreign[ep.Addr] = ep.ID
		}
	}
	defer func() {
		m.table, m.tableOK = nil, true
		for _, id := range sortedIDs(result) {
			m.table = append(m.table, result[id])
		}
	}()
	wanted := map[uint8]Endpoint{}
	m.skipped = map[uint8]uint8{}
	for _, ep := range want.Endpoints {
		if id, ok := foreign[ep.Addr]; !ok {
			wanted[ep.ID] = ep
		} else {
			m.skipped[ep.ID] = id
		}
	}
	// Deletions first: a wanted address may sit on another owned ID
	// (links reordered) and the kernel refuses a second endpoint on it.
	for _, id := range sortedIDs(mine) {
		ep := mine[id]
		w, ok := wanted[id]
		if ok && w.Addr == ep.Addr && w.IfIndex == ep.IfIndex && w.Flags&^Backup == ep.Flags&^Backup {
			continue
		}
		if err := m.k.Del(id); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(mine, id)
		delete(result, id)
		changes = append(changes, fmt.Sprintf("endpoint delete id %d %s", id, ep.Addr))
	}
	for _, id := range sortedIDs(wanted) {
		w := wanted[id]
		ep, ok := mine[id]
		switch {
		case !ok:
			if err := m.k.Add(w); err != nil {
				errs = append(errs, err)
				continue
			}
			result[id] = w
			changes = append(changes, fmt.Sprintf("endpoint add %s id %d %s%s", w.Addr, id, w.Flags, dev(w)))
		case ep.Flags != w.Flags:
			if err := m.k.SetFlags(id, w.Flags&Backup); err != nil {
				errs = append(errs, err)
				continue
			}
			ep.Flags = ep.Flags&^Backup | w.Flags&Backup
			result[id] = ep
			changes = append(changes, fmt.Sprintf("endpoint change id %d %s", id, backupWord(w.Flags)))
		}
	}
	return changes, errors.Join(errs...)
}

// Clear deletes every endpoint in the owned ranges (on a clean stop).
func (m *Manager) Clear() ([]string, error) {
	have, err := m.k.Endpoints()
	if err != nil {
		return nil, err
	}
	var changes []string
	var errs []error
	m.table, m.tableOK, m.skipped = nil, true, nil
	for _, ep := range have {
		if !m.owns(ep.ID) {
			m.table = append(m.table, ep)
			continue
		}
		if err := m.k.Del(ep.ID); err != nil {
			m.table = append(m.table, ep)
			errs = append(errs, err)
			continue
		}
		changes = append(changes, fmt.Sprintf("endpoint delete id %d %s", ep.ID, ep.Addr))
	}
	return changes, errors.Join(errs...)
}

func dev(ep Endpoint) string {
	if ep.IfIndex == 0 {
		return ""
	}
	return fmt.Sprintf(" ifindex %d", ep.IfIndex)
}

func backupWord(f Flags) string {
	if f&Backup != 0 {
		return "backup"
	}
	return "nobackup"
}

func sortedIDs(m map[uint8]Endpoint) []uint8 {
	ids := make([]uint8, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
