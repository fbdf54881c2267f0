package config

import (
	"fmt"
	"slices"
	"time"
)

// MPTCP makes multihome manage the kernel's MPTCP path manager (RFC 8684)
// from link health: every usable link's address becomes an endpoint, so
// MPTCP connections of this machine open one subflow per healthy link and
// survive the loss of any one of them. docs/mptcp.md.
type MPTCP struct {
	// Links are the links whose addresses become endpoints, by name
	// (default: all links).
	Links []string `yaml:"links"`
	// Signal also announces the addresses to peers (ADD_ADDR), so that
	// they open subflows towards them: for a server or aggregator with
	// several uplinks. A client only needs subflow endpoints (default
	// false).
	Signal bool `yaml:"signal"`
	// Subflows is the kernel's limit of extra subflows per connection,
	// and AddAddrAccepted of addresses accepted from a peer's ADD_ADDR
	// (0–8; default twice the endpoint links, at most 8).
	Subflows        int `yaml:"subflows"`
	AddAddrAccepted int `yaml:"add_addr_accepted"`
	// IDBase is the first endpoint ID multihome owns: link i (in Links
	// order) uses IDBase+2i for IPv4 and IDBase+2i+1 for IPv6. Endpoints
	// with other IDs are the operator's and are left alone (default 100).
	IDBase int `yaml:"id_base"`
	// Reconcile is how often the kernel's endpoints are compared with the
	// desired ones and repaired (default 5s).
	Reconcile Duration `yaml:"reconcile"`
}

// MPTCP defaults.
const (
	DefaultMPTCPIDBase    = 100
	MaxMPTCPLimit         = 8
	DefaultMPTCPReconcile = 5 * time.Second
)

func init() { sectionChecks = append(sectionChecks, checkMPTCP) }

// checkMPTCP fills in the mptcp section's defaults and validates it.
func checkMPTCP(c *Config, k *checker) {
	m := c.MPTCP
	if m == nil {
		return
	}
	if len(m.Links) == 0 {
		for _, l := range c.Links {
			m.Links = append(m.Links, l.Name)
		}
	}
	for i, n := range m.Links {
		p := fmt.Sprintf("mptcp.links[%d]", i)
		if c.LinkByName(n) == nil {
			k.errorf(p, "unknown link %q", n)
		}
		if slices.Index(m.Links, n) != i {
			k.errorf(p, "link %q listed twice", n)
		}
	}
	def := min(2*len(m.Links), MaxMPTCPLimit)
	if !c.Has("mptcp.subflows") {
		m.Subflows = def
	}
	if !c.Has("mptcp.add_addr_accepted") {
		m.AddAddrAccepted = def
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"subflows", m.Subflows}, {"add_addr_accepted", m.AddAddrAccepted}} {
		if f.v < 0 || f.v > MaxMPTCPLimit {
			k.errorf("mptcp."+f.name, "must be 0..%d (the kernel's limit), got %d", MaxMPTCPLimit, f.v)
		}
	}
	if !c.Has("mptcp.id_base") {
		m.IDBase = DefaultMPTCPIDBase
	}
	if last := m.IDBase + 2*len(m.Links) - 1; m.IDBase < 1 || last > 255 {
		k.errorf("mptcp.id_base", "endpoint IDs %d..%d do not fit in 1..255 (two per link)", m.IDBase, last)
	}
	defDur(&m.Reconcile, DefaultMPTCPReconcile)
	if m.Reconcile.D() < 100*time.Millisecond {
		k.errorf("mptcp.reconcile", "must be at least 100ms, got %v", m.Reconcile.D())
	}
}
