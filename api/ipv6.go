package api

import (
	"net/http"
	"net/netip"
	"time"
)

// IPv6Reporter is what a Backend may also implement to serve
// GET /api/v1/ipv6: the LAN prefixes advertised and the firewall sets
// kept filled, and whether the config has an ipv6 section at all.
type IPv6Reporter interface {
	IPv6Status() (IPv6Status, bool)
}

// States of an advertised IPv6 prefix (IPv6Prefix.State).
const (
	// IPv6Preferred: advertised with its preferred lifetime; hosts use it
	// for new connections.
	IPv6Preferred = "preferred"
	// IPv6Deprecated: its link is down, forced down or drained, so it is
	// advertised with preferred lifetime 0 (RFC 8475): hosts keep their
	// existing connections but start none.
	IPv6Deprecated = "deprecated"
	// IPv6Retired: removed by a renumbering (reload or new delegation),
	// advertised with zero lifetimes until ipv6.ra.retire is over.
	IPv6Retired = "retired"
	// IPv6Pending: a dhcpv6_pd entry whose prefix is not learned yet;
	// nothing is advertised for it.
	IPv6Pending = "pending"
)

// Sources of an IPv6 prefix (IPv6Prefix.Source).
const (
	IPv6Static   = "static"    // ipv6.prefixes[].prefix
	IPv6DHCPv6PD = "dhcpv6-pd" // ipv6.prefixes[].dhcpv6_pd
	IPv6Internal = "internal"  // ipv6.internal, in nptv6 mode
)

// IPv6Status is the answer of GET /api/v1/ipv6.
type IPv6Status struct {
	Time time.Time `json:"time"`
	// Mode is ipv6.mode: sadr or nptv6.
	Mode string `json:"mode"`
	// LAN is the interface the advertisements go out of.
	LAN          string        `json:"lan"`
	Prefixes     []IPv6Prefix  `json:"prefixes"`
	FirewallSets []FirewallSet `json:"firewall_sets"`
}

// IPv6Prefix is one LAN prefix and what the advertisements say about it.
type IPv6Prefix struct {
	// Link is the link whose provider the prefix comes from (empty for
	// the internal prefix in nptv6 mode).
	Link string `json:"link"`
	// Prefix is absent while State is pending.
	Prefix netip.Prefix `json:"prefix,omitzero"`
	Source string       `json:"source"`
	State  string       `json:"state"`
	// Reason says why a prefix is deprecated or retired.
	Reason string `json:"reason,omitempty"`
	// The lifetimes the advertisements carry, in seconds.
	PreferredLifetime int64 `json:"preferred_lifetime_s"`
	ValidLifetime     int64 `json:"valid_lifetime_s"`
	// Lease is the DHCPv6-PD delegation the prefix is taken from.
	Lease *PDLease `json:"lease,omitempty"`
}

// PDLease is a delegation held by the DHCPv6-PD client of a link.
type PDLease struct {
	// Delegated is the prefix the server delegated, e.g. a /56.
	Delegated netip.Prefix `json:"delegated"`
	// Server is the DUID of the delegating server, in hex.
	Server string `json:"server,omitempty"`
	// BoundAt is when this prefix was first obtained.
	BoundAt time.Time `json:"bound_at,omitzero"`
	// RenewAt (T1) and RebindAt (T2) are when the client extends the
	// lease; PreferredUntil and ValidUntil when its lifetimes end unless
	// it is extended.
	RenewAt        time.Time `json:"renew_at"`
	RebindAt       time.Time `json:"rebind_at"`
	PreferredUntil time.Time `json:"preferred_until"`
	ValidUntil     time.Time `json:"valid_until"`
}

// FirewallSet is one of the operator's nftables sets (ipv6.firewall_sets)
// and the prefixes multihome keeps in it.
type FirewallSet struct {
	Family   string         `json:"family"`
	Table    string         `json:"table"`
	Set      string         `json:"set"`
	Prefixes []netip.Prefix `json:"prefixes"`
	// Error is the last error writing or reading the set; empty once the
	// set holds its prefixes.
	Error string `json:"error,omitempty"`
	// Checked is when the set was last read (and written if needed).
	Checked time.Time `json:"checked,omitzero"`
	// Updates counts the writes since the daemon started.
	Updates uint64 `json:"updates"`
}

func (s *Server) getIPv6(w http.ResponseWriter, r *http.Request) {
	ir, ok := s.b.(IPv6Reporter)
	if !ok {
		writeError(w, http.StatusNotFound, "ipv6 is not configured: this daemon has no IPv6 subsystem")
		return
	}
	st, configured := ir.IPv6Status()
	if !configured {
		writeError(w, http.StatusNotFound, "ipv6 is not configured: the config has no ipv6 section")
		return
	}
	if st.Prefixes == nil {
		st.Prefixes = []IPv6Prefix{}
	}
	if st.FirewallSets == nil {
		st.FirewallSets = []FirewallSet{}
	}
	for i := range st.FirewallSets {
		if st.FirewallSets[i].Prefixes == nil {
			st.FirewallSets[i].Prefixes = []netip.Prefix{}
		}
	}
	writeJSON(w, http.StatusOK, st)
}
