package config

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// HA makes this gateway one node of an active/standby pair: VRRP by
// keepalived moves the virtual addresses (the LAN's gateway address and,
// on shared uplinks, the site's SNAT addresses) to the node that holds the
// role, and conntrackd keeps both nodes' connection tables in sync over a
// dedicated link so that established flows survive a takeover. multihome
// renders both daemons' configs, runs them as child processes and feeds
// its link health into the VRRP priority (package ha, docs/ha.md).
type HA struct {
	// Node is this gateway's name (keepalived router_id); Partner is the
	// other node's. Both nodes carry the same section with the two swapped.
	Node    string `yaml:"node"`
	Partner string `yaml:"partner"`
	// Priority is the base VRRP priority, 1..254 (default 100). Each
	// healthy uplink adds LinkWeight; equal totals are broken by the
	// higher interface address, as VRRP does.
	Priority int `yaml:"priority"`
	// LinkWeight is the priority an uplink adds while up (default 10;
	// half of it while degraded).
	LinkWeight int `yaml:"link_weight"`
	// AdvertInterval is the VRRP advertisement interval (default 100ms;
	// VRRPv3 counts centiseconds: 10ms..40.95s). The backup takes over
	// about 3 intervals after the master's last advert.
	AdvertInterval Duration `yaml:"advert_interval"`
	// Version is the VRRP version: 3 (default, RFC 5798: sub-second
	// adverts, no authentication) or 2 (whole seconds only).
	Version int `yaml:"version"`
	// AuthPassFile holds a VRRPv2 simple password (at most 8 characters);
	// VRRPv3 has no authentication, so it is refused with version 3.
	AuthPassFile string `yaml:"auth_pass_file"`
	// Preempt lets a node with a higher priority take the role from a
	// working master. Off by default: a recovered node does not cause a
	// second outage. PreemptDelay waits that long (up to 1000s) first.
	Preempt      bool     `yaml:"preempt"`
	PreemptDelay Duration `yaml:"preempt_delay"`
	// Sync is the dedicated link conntrackd replicates connections over.
	Sync HASync `yaml:"sync"`
	// Instances are the VRRP instances, all in one sync group (they move
	// together): one for the LAN and, on uplinks shared through a switch,
	// one per uplink carrying the site's address on it.
	Instances []VRRPInstance `yaml:"instances"`
	// RunDir holds the rendered configs, the track files, the notify FIFO
	// and the daemons' sockets and logs (default /run/multihome/ha-NODE).
	RunDir string `yaml:"run_dir"`
	// Keepalived and Conntrackd are the programs run (default: found in
	// PATH or /usr/sbin; Debian packages keepalived and conntrackd).
	Keepalived string `yaml:"keepalived"`
	Conntrackd string `yaml:"conntrackd"`
}

// HASync is the sync link between the two nodes.
type HASync struct {
	// Interface is this node's interface on the sync link.
	Interface string `yaml:"interface"`
	// Address is this node's address on it, with its prefix length,
	// e.g. 203.0.113.249/30.
	Address netip.Prefix `yaml:"address"`
	// Partner is the partner's address on the sync link.
	Partner netip.Addr `yaml:"partner"`
	// Port is conntrackd's UDP port (default 3780).
	Port int `yaml:"port"`
}

// VRRPInstance is one virtual router.
type VRRPInstance struct {
	// Name names the instance in keepalived and the logs (default: the
	// link's name, or "lan").
	Name string `yaml:"name"`
	// Interface is where the instance runs (the LAN side). Give either
	// Interface or Link.
	Interface string `yaml:"interface"`
	// Link names an uplink of the links section (the WAN side of a shared
	// uplink): the instance runs on its interface and its IPv4 virtual
	// address becomes the link's SNAT address, so the site's address moves
	// with the role.
	Link string `yaml:"link"`
	// VRID is the virtual router id, 1..255, the same on both nodes.
	VRID int `yaml:"vrid"`
	// VirtualAddresses are the addresses that move, with prefix length,
	// all of one family.
	VirtualAddresses []netip.Prefix `yaml:"virtual_addresses"`
}

// HA defaults.
const (
	DefaultHAPriority   = 100
	DefaultHALinkWeight = 10
	DefaultHAAdvert     = 100 * time.Millisecond
	DefaultHASyncPort   = 3780
)

// lookPath finds the HA programs; tests replace it.
var lookPath = func(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := exec.LookPath(p); err == nil {
		return p, nil
	}
	return "", exec.ErrNotFound
}

var vrrpName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

func init() { sectionChecks = append(sectionChecks, checkHA) }

// checkHA fills in the ha section's defaults and validates it; it also
// finds keepalived and conntrackd, so a node without them fails at
// check-config, before anything is started.
func checkHA(c *Config, k *checker) {
	h := c.HA
	if h == nil {
		return
	}
	for _, f := range []struct {
		path string
		v    *string
		what string
	}{{"ha.node", &h.Node, "this node's name"}, {"ha.partner", &h.Partner, "the partner's name"}} {
		switch {
		case *f.v == "":
			k.errorf(f.path, "missing: %s", f.what)
		case !vrrpName.MatchString(*f.v):
			k.errorf(f.path, "bad name %q: use letters, digits, '-', '_' or '.', at most 32", *f.v)
		}
	}
	if h.Node != "" && h.Node == h.Partner {
		k.errorf("ha.partner", "%q is this node's own name: name the other gateway", h.Partner)
	}
	if h.Priority == 0 {
		h.Priority = DefaultHAPriority
	}
	if !c.Has("ha.link_weight") {
		h.LinkWeight = DefaultHALinkWeight
	}
	if h.Priority < 1 || h.Priority > 254 {
		k.errorf("ha.priority", "%d is out of range 1..254", h.Priority)
	}
	if h.LinkWeight < 0 {
		k.errorf("ha.link_weight", "must not be negative, got %d", h.LinkWeight)
	} else if top := h.Priority + h.LinkWeight*len(c.Links); top > 254 {
		k.errorf("ha.link_weight", "priority %d + %d links × %d = %d is over VRRP's 254: lower priority or link_weight", h.Priority, len(c.Links), h.LinkWeight, top)
	}
	checkHAVersion(c, k)
	if h.PreemptDelay != 0 {
		switch {
		case !h.Preempt:
			k.errorf("ha.preempt_delay", "set without preempt: true (preemption is off by default)")
		case h.PreemptDelay < 0 || h.PreemptDelay.D() > 1000*time.Second:
			k.errorf("ha.preempt_delay", "%s is out of range 0..1000s", h.PreemptDelay.D())
		}
	}
	checkHASync(c, k)
	checkVRRPInstances(c, k)
	if h.RunDir == "" && h.Node != "" {
		h.RunDir = "/run/multihome/ha-" + h.Node
	} else if h.RunDir != "" && !filepath.IsAbs(h.RunDir) {
		k.errorf("ha.run_dir", "%q must be an absolute path", h.RunDir)
	}
	for _, p := range []struct {
		path, pkg string
		v         *string
	}{{"ha.keepalived", "keepalived", &h.Keepalived}, {"ha.conntrackd", "conntrackd", &h.Conntrackd}} {
		name := *p.v
		if name == "" {
			name = p.pkg
		}
		found, err := lookPath(name)
		if err != nil {
			k.errorf(p.path, "%s not found (install the Debian package %s, or give its path here)", name, p.pkg)
			continue
		}
		*p.v = found
	}
}

func checkHAVersion(c *Config, k *checker) {
	h := c.HA
	switch h.Version {
	case 0:
		h.Version = 3
	case 2, 3:
	default:
		k.errorf("ha.version", "VRRP version %d: want 2 or 3", h.Version)
		return
	}
	if h.AdvertInterval == 0 {
		h.AdvertInterval = Duration(DefaultHAAdvert)
		if h.Version == 2 {
			h.AdvertInterval = Duration(time.Second)
		}
	}
	a := h.AdvertInterval.D()
	switch {
	case h.Version == 3 && (a < 10*time.Millisecond || a > 40950*time.Millisecond || a%(10*time.Millisecond) != 0):
		k.errorf("ha.advert_interval", "%s: VRRPv3 counts centiseconds, want 10ms..40.95s in steps of 10ms", a)
	case h.Version == 2 && (a < time.Second || a > 255*time.Second || a%time.Second != 0):
		k.errorf("ha.advert_interval", "%s: VRRPv2 counts whole seconds (1s..255s); use version 3 for sub-second adverts", a)
	}
	if h.AuthPassFile != "" && h.Version == 3 {
		k.errorf("ha.auth_pass_file", "VRRPv3 (RFC 5798) has no authentication: drop it, or use version: 2 (whole-second adverts)")
	}
}

func checkHASync(c *Config, k *checker) {
	s := &c.HA.Sync
	if !c.Has("ha.sync") {
		k.errorf("ha.sync", "missing: the link conntrackd syncs connections over (interface, address, partner)")
		return
	}
	if s.Interface == "" {
		k.errorf("ha.sync.interface", "missing: this node's interface on the sync link")
	} else if l := c.LinkByInterface(s.Interface); l != nil && l.Gateway4 != s.Partner {
		k.errorf("ha.sync.interface", "%q is an uplink: the sync link must be its own (a transit link to the partner's uplinks has gateway4: the partner's sync address)", s.Interface)
	}
	switch {
	case !s.Address.IsValid():
		k.errorf("ha.sync.address", "missing: this node's address on the sync link, with prefix length (e.g. 203.0.113.249/30)")
	case !s.Address.Addr().Is4():
		k.errorf("ha.sync.address", "%s: conntrackd syncs over IPv4 here; give an IPv4 address", s.Address)
	}
	switch {
	case !s.Partner.IsValid():
		k.errorf("ha.sync.partner", "missing: the partner's address on the sync link")
	case s.Address.IsValid() && !s.Address.Masked().Contains(s.Partner):
		k.errorf("ha.sync.partner", "%s is off the sync link %s: the partner must be on this node's sync network", s.Partner, s.Address.Masked())
	case s.Partner == s.Address.Addr():
		k.errorf("ha.sync.partner", "%s is this node's own sync address", s.Partner)
	}
	if s.Port == 0 {
		s.Port = DefaultHASyncPort
	} else if s.Port < 1 || s.Port > 65535 {
		k.errorf("ha.sync.port", "%d is not a UDP port", s.Port)
	}
}

func checkVRRPInstances(c *Config, k *checker) {
	h := c.HA
	if len(h.Instances) == 0 {
		k.errorf("ha.instances", "missing: at least the LAN's VRRP instance (interface, vrid, virtual_addresses)")
		return
	}
	vrids, names, ifaces := map[int]int{}, map[string]int{}, map[string]int{}
	for i := range h.Instances {
		in := &h.Instances[i]
		p := fmt.Sprintf("ha.instances[%d]", i)
		switch {
		case in.Interface != "" && in.Link != "":
			k.errorf(p+".link", "give interface (LAN side) or link (a shared uplink), not both")
		case in.Link != "":
			l := c.LinkByName(in.Link)
			if l == nil {
				k.errorf(p+".link", "no link named %q in links", in.Link)
				break
			}
			in.Interface = l.Interface
			if !l.Address4.IsValid() {
				k.errorf(p+".link", "link %s needs address4: this node's own address on it (probes use it; new flows leave from the virtual address)", l.Name)
			}
		case in.Interface == "":
			k.errorf(p+".interface", "missing: the interface the instance runs on (or link: an uplink's name)")
		default:
			if l := c.LinkByInterface(in.Interface); l != nil {
				k.errorf(p+".interface", "%q is link %s's interface: write link: %s", in.Interface, l.Name, l.Name)
			}
		}
		if in.Name == "" {
			in.Name = in.Link
			if in.Name == "" {
				in.Name = "lan"
				if i > 0 {
					in.Name = fmt.Sprintf("lan%d", i)
				}
			}
		} else if !vrrpName.MatchString(in.Name) {
			k.errorf(p+".name", "bad name %q: use letters, digits, '-', '_' or '.', at most 32", in.Name)
		}
		if j, dup := names[in.Name]; dup {
			k.errorf(p+".name", "duplicate instance name %q (also ha.instances[%d])", in.Name, j)
		}
		names[in.Name] = i
		if in.Interface != "" {
			if j, dup := ifaces[in.Interface]; dup {
				k.errorf(p, "a second instance on interface %s (also ha.instances[%d]): give one instance all its virtual addresses", in.Interface, j)
			}
			ifaces[in.Interface] = i
		}
		if in.Interface != "" && in.Interface == h.Sync.Interface {
			k.errorf(p+".interface", "%q is the sync link: VRRP runs on the LAN and the uplinks", in.Interface)
		}
		switch {
		case in.VRID < 1 || in.VRID > 255:
			k.errorf(p+".vrid", "missing or out of range: want 1..255, got %d", in.VRID)
		default:
			if j, dup := vrids[in.VRID]; dup {
				k.errorf(p+".vrid", "duplicate VRID %d (also ha.instances[%d]): each instance needs its own", in.VRID, j)
			}
			vrids[in.VRID] = i
		}
		if len(in.VirtualAddresses) == 0 {
			k.errorf(p+".virtual_addresses", "missing: the addresses that move with the role")
		}
		for j, a := range in.VirtualAddresses {
			if a.Addr().Is4() != in.VirtualAddresses[0].Addr().Is4() {
				k.errorf(fmt.Sprintf("%s.virtual_addresses[%d]", p, j), "%s: one instance carries one family (VRRPv3 runs IPv4 and IPv6 as separate instances)", a)
			}
		}
	}
}

// LinkByInterface returns the link on interface name, or nil.
func (c *Config) LinkByInterface(name string) *Link {
	for i := range c.Links {
		if c.Links[i].Interface == name {
			return &c.Links[i]
		}
	}
	return nil
}

// SNAT4 returns the IPv4 address that new flows leaving link i are
// translated to: the link's virtual address when an HA instance carries
// one, else the link's own address (invalid: masquerade).
func (c *Config) SNAT4(i int) netip.Addr {
	l := c.Links[i]
	if c.HA != nil {
		for _, in := range c.HA.Instances {
			if in.Link != l.Name {
				continue
			}
			for _, a := range in.VirtualAddresses {
				if a.Addr().Is4() {
					return a.Addr()
				}
			}
		}
	}
	return l.Address4
}
