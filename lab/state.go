package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/multihome/multihome/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// StateDir holds one JSON file per lab, NAME.json, so that another process
// can find a lab (`multihome-lab status|fault|down`).
const StateDir = "/run/multihome/lab"

type stateFile struct {
	Spec       Spec                               `json:"spec"`
	Namespaces []string                           `json:"namespaces"`
	PID        int                                `json:"pid"` // process that built the lab
	Created    time.Time                          `json:"created"`
	Servers    bool                               `json:"servers"`          // whether PID serves HTTP, DNS and echo in the core
	Faults     map[string]map[FaultKind]time.Time `json:"faults,omitempty"` // ISP → kind → applied at
}

func statePath(name string) string { return filepath.Join(StateDir, name+".json") }

// writeState writes the state file atomically. The caller holds l.mu or
// owns l alone.
func (l *Lab) writeState() error {
	st := stateFile{
		Spec:       l.Spec,
		Namespaces: l.Namespaces(),
		PID:        l.pid,
		Created:    l.created,
		Faults:     map[string]map[FaultKind]time.Time{},
		Servers:    l.srv != nil,
	}
	for isp, m := range l.since {
		if len(m) > 0 {
			st.Faults[isp] = maps.Clone(m)
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp := statePath(l.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, statePath(l.Name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// refreshSince reloads fault times from the state file, which processes
// sharing the lab use as their common record. The caller holds l.mu.
func (l *Lab) refreshSince() {
	data, err := os.ReadFile(statePath(l.Name))
	if err != nil {
		return
	}
	var st stateFile
	if json.Unmarshal(data, &st) != nil {
		return
	}
	l.since = map[string]map[FaultKind]time.Time{}
	for isp, m := range st.Faults {
		l.since[isp] = maps.Clone(m)
	}
}

// saveFaults records fault times in the state file, if the lab still has
// one. The caller holds l.mu.
func (l *Lab) saveFaults() {
	if _, err := os.Stat(statePath(l.Name)); err != nil {
		return
	}
	if err := l.writeState(); err != nil {
		l.log.Warn("save lab state", "err", err)
	}
}

// Load finds a lab built by another process (or this one) from its state
// file. The loaded lab has no servers of its own (they run in the process
// that built it); faults, status, Run and Down work.
func Load(name string) (*Lab, error) {
	data, err := os.ReadFile(statePath(name))
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("lab %s: state file: %w", name, err)
	}
	spec, err := st.Spec.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("lab %s: state file: %w", name, err)
	}
	if spec.Name != name {
		return nil, fmt.Errorf("lab %s: state file names lab %q", name, spec.Name)
	}
	l := newLab(spec, nil)
	l.pid, l.created = st.PID, st.Created
	for isp, m := range st.Faults {
		l.since[isp] = maps.Clone(m)
	}
	return l, nil
}

// Labs returns the names of the labs that have a state file.
func Labs() ([]string, error) {
	entries, err := os.ReadDir(StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	return names, nil
}

// Status describes a lab as the kernel shows it.
type Status struct {
	Name       string        `json:"name"`
	Spec       Spec          `json:"spec"`
	PID        int           `json:"pid"`   // builder of the lab, running its servers
	Alive      bool          `json:"alive"` // whether PID still runs
	Created    time.Time     `json:"created"`
	Namespaces []NSStatus    `json:"namespaces"`
	Faults     []ActiveFault `json:"faults"`
	Err        string        `json:"err,omitempty"` // what could not be read
}

// NSStatus describes one namespace of a lab.
type NSStatus struct {
	Role       string        `json:"role"`
	Name       string        `json:"name"`
	Exists     bool          `json:"exists"`
	Interfaces []IfaceStatus `json:"interfaces,omitempty"`
}

// IfaceStatus describes one interface. Loopback is listed only when it
// carries more than the loopback addresses; IPv6 link-local addresses are
// left out.
type IfaceStatus struct {
	Name      string         `json:"name"`
	Up        bool           `json:"up"`      // administratively
	Carrier   bool           `json:"carrier"` // lower layer up
	OperState string         `json:"oper_state"`
	Addrs     []netip.Prefix `json:"addrs,omitempty"`
}

// Status reads the lab's namespaces, interfaces and faults from the
// kernel.
func (l *Lab) Status() (*Status, error) {
	st := &Status{Name: l.Name, Spec: l.Spec, PID: l.pid, Alive: netns.Alive(l.pid), Created: l.created}
	var errs []error
	for _, role := range l.Roles() {
		ns := NSStatus{Role: role, Name: l.NS(role), Exists: netns.Exists(l.NS(role))}
		if ns.Exists {
			ifaces, err := interfaces(ns.Name)
			if err != nil {
				errs = append(errs, err)
			}
			ns.Interfaces = ifaces
		}
		st.Namespaces = append(st.Namespaces, ns)
	}
	faults, err := l.Faults()
	st.Faults = faults
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		st.Err = err.Error()
		return st, err
	}
	return st, nil
}

func interfaces(ns string) ([]IfaceStatus, error) {
	h, err := netns.Handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("%s: list links: %w", ns, err)
	}
	var out []IfaceStatus
	for _, link := range links {
		a := link.Attrs()
		is := IfaceStatus{
			Name:      a.Name,
			Up:        a.Flags&net.FlagUp != 0,
			Carrier:   a.RawFlags&unix.IFF_LOWER_UP != 0,
			OperState: a.OperState.String(),
		}
		addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return out, fmt.Errorf("%s: list addresses of %s: %w", ns, a.Name, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok || ip.IsLinkLocalUnicast() || ip.IsLoopback() {
				continue
			}
			bits, _ := ad.Mask.Size()
			is.Addrs = append(is.Addrs, netip.PrefixFrom(ip.Unmap(), bits))
		}
		if a.Flags&net.FlagLoopback != 0 && len(is.Addrs) == 0 {
			continue
		}
		out = append(out, is)
	}
	return out, nil
}

// String renders the status for people.
func (s *Status) String() string {
	var b strings.Builder
	alive := "exited"
	if s.Alive {
		alive = "running"
	}
	fmt.Fprintf(&b, "lab %s: %d ISPs, %d LAN hosts, shared upstream %v; built by pid %d (%s) at %s\n",
		s.Name, s.Spec.ISPs, s.Spec.LANHosts, s.Spec.SharedUpstream, s.PID, alive, s.Created.Format(time.RFC3339))
	for _, ns := range s.Namespaces {
		if !ns.Exists {
			fmt.Fprintf(&b, "  %-6s %s: missing\n", ns.Role, ns.Name)
			continue
		}
		fmt.Fprintf(&b, "  %-6s %s\n", ns.Role, ns.Name)
		for _, i := range ns.Interfaces {
			carrier := "no-carrier"
			if i.Carrier {
				carrier = "carrier"
			}
			admin := "down"
			if i.Up {
				admin = "up"
			}
			var addrs []string
			for _, a := range i.Addrs {
				addrs = append(addrs, a.String())
			}
			fmt.Fprintf(&b, "         %-6s %-4s %-10s %-14s %s\n", i.Name, admin, carrier, i.OperState, strings.Join(addrs, " "))
		}
	}
	if len(s.Faults) == 0 {
		b.WriteString("  faults: none\n")
	}
	for _, f := range s.Faults {
		fmt.Fprintf(&b, "  fault: %s\n", f)
	}
	if s.Err != "" {
		fmt.Fprintf(&b, "  error: %s\n", s.Err)
	}
	return b.String()
}

// Cleanup removes every namespace whose name starts with prefix, whoever
// made it, and the state files of labs left with no namespace. Pass a lab
// name followed by "-" to remove exactly that lab (for `multihome-lab
// down` when the lab's process died). It returns the namespaces removed.
// Processes still inside are not killed.
func Cleanup(prefix string) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("lab cleanup: empty prefix")
	}
	names, err := netns.List(prefix)
	if err != nil {
		return nil, err
	}
	removed, err := deleteAll(names)
	labs, lerr := Labs()
	for _, name := range labs {
		if !strings.HasPrefix(name, prefix) && !strings.HasPrefix(name+"-", prefix) {
			continue
		}
		if left, _ := netns.List(name + "-"); len(left) == 0 {
			os.Remove(statePath(name))
		}
	}
	return removed, errors.Join(err, lerr)
}

// CleanupStale removes the namespaces and state files of labs named with
// netns.Unique(prefix, "") whose creating process is gone: what crashed
// test runs left. Labs of running processes are untouched.
func CleanupStale(prefix string) ([]string, error) {
	names, err := netns.Stale(prefix)
	if err != nil {
		return nil, err
	}
	removed, err := deleteAll(names)
	labs, lerr := Labs()
	for _, name := range labs {
		if pid, ok := netns.Creator(prefix, name); ok && !netns.Alive(pid) {
			if left, _ := netns.List(name + "-"); len(left) == 0 {
				os.Remove(statePath(name))
			}
		}
	}
	return removed, errors.Join(err, lerr)
}

func deleteAll(names []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, n := range names {
		if err := netns.Delete(n); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n)
	}
	return removed, errors.Join(errs...)
}
