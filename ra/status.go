package ra

import (
	"time"

	"github.com/mdlayher/ndp"

	"github.com/multihome/multihome/config"
)

// Status is a copy of what the IPv6 subsystem advertises and keeps, for
// the API (read under the Advertiser's lock, as State is).
type Status struct {
	// IPv6 is the section in force, with the prefixes learned by
	// DHCPv6-PD filled in (read only: a reload replaces it whole).
	IPv6 *config.IPv6
	// Prefixes are those of the next advertisement, retired ones last.
	Prefixes []PrefixStatus
	// Sets are the firewall sets of ipv6.firewall_sets.
	Sets []SetStatus
}

// PrefixStatus is one prefix of the advertisement and the lifetimes it
// carries.
type PrefixStatus struct {
	PrefixState
	Preferred, Valid time.Duration
}

// SetStatus is a firewall set, the prefixes it should hold, and how the
// last attempts to fill it went.
type SetStatus struct {
	FirewallSet
	// Err is the last error of the set ("" once it holds its prefixes).
	Err string
	// Checked is when the sets were last read; zero before the first
	// sync.
	Checked time.Time
	// Updates counts the writes to the set.
	Updates uint64
}

// Status returns the advertised prefixes with their lifetimes, and the
// firewall sets' state.
func (a *Advertiser) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	v := a.cfg.IPv6
	st := Status{IPv6: v}
	states := a.stateLocked(now)
	m := Advertisement(v, states, true)
	i := 0
	for _, o := range m.Options {
		pi, ok := o.(*ndp.PrefixInformation)
		if !ok || i >= len(states) {
			continue
		}
		st.Prefixes = append(st.Prefixes, PrefixStatus{PrefixState: states[i], Preferred: pi.PreferredLifetime, Valid: pi.ValidLifetime})
		i++
	}
	for _, fs := range FirewallSets(v, a.retired, now) {
		id := fs.String()
		st.Sets = append(st.Sets, SetStatus{FirewallSet: fs, Err: a.sets.lastErr[id], Checked: a.sets.lastCheck, Updates: uint64(a.sets.updates[id])})
	}
	return st
}
