package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Topology describes the site's physical and organisational layout, for
// the single-point-of-failure audit (package audit, docs/audit.md). It is
// optional and changes nothing in how the daemon runs.
type Topology struct {
	// Gateway names the device multihome runs on (default "gateway"; an
	// implicit device of kind gateway when not listed in Devices).
	Gateway string `yaml:"gateway"`
	// HAPartners name the devices that take over the gateway's role when
	// it fails (VRRP/keepalived peers).
	HAPartners []string `yaml:"ha_partners"`
	// LAN lists, from the hosts toward the gateway, the devices LAN
	// traffic crosses before it reaches the gateway (and its HA
	// partners): the LAN switch a pair shares, for instance.
	LAN []string `yaml:"lan"`
	// Devices are the boxes traffic or services depend on.
	Devices []TopoDevice `yaml:"devices"`
	// PowerFeeds are the independent power sources (circuits, UPSes).
	PowerFeeds []TopoPowerFeed `yaml:"power_feeds"`
	// Conduits are building entries, ducts and trenches cables run through.
	Conduits []TopoConduit `yaml:"conduits"`
	// Providers are the networks the links connect to.
	Providers []TopoProvider `yaml:"providers"`
	// Links give, for links of the links section (by name), their provider
	// and physical path.
	Links []TopoLink `yaml:"links"`
	// DNS lists the site's DNS servers: authoritative ones for its zones
	// and the resolvers its hosts use.
	DNS []TopoDNSServer `yaml:"dns"`
	// Prefixes are the prefixes the site announces (BGP) or must be
	// reachable at.
	Prefixes []netip.Prefix `yaml:"prefixes"`
}

// Device kinds.
const (
	DeviceRouter   = "router"
	DeviceSwitch   = "switch"
	DeviceFirewall = "firewall"
	DeviceServer   = "server"
	DeviceGateway  = "gateway"
	DeviceModem    = "modem"
)

var deviceKinds = []string{DeviceRouter, DeviceSwitch, DeviceFirewall, DeviceServer, DeviceGateway, DeviceModem}

// DefaultTopologyGateway is the gateway device's name when unset.
const DefaultTopologyGateway = "gateway"

// TopoDevice is one device.
type TopoDevice struct {
	Name string `yaml:"name"`
	// Kind is router, switch, firewall, server, gateway or modem (default
	// router).
	Kind string `yaml:"kind"`
	// Power lists the power feeds the device draws from; it fails only
	// when all of them fail. Empty: unknown, not checked.
	Power []string `yaml:"power"`
	// Location is free text (rack, room), shown in reports.
	Location string `yaml:"location"`
}

// TopoPowerFeed is one power source.
type TopoPowerFeed struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// TopoConduit is a building entry, duct or trench.
type TopoConduit struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// TopoProvider is one network provider.
type TopoProvider struct {
	Name string `yaml:"name"`
	// ASN is the provider's autonomous system number, if known.
	ASN uint32 `yaml:"asn"`
	// Upstreams are the carriers it buys transit from: names or "AS3356".
	// An upstream that names another provider (by name or AS number)
	// makes this provider depend on that one.
	Upstreams []string `yaml:"upstreams"`
	// Networks are the provider's address space; probe targets inside it
	// prove only the provider's network.
	Networks []netip.Prefix `yaml:"networks"`
}

// TopoLink places one link of the links section.
type TopoLink struct {
	// Name is the link's name in links[].
	Name string `yaml:"name"`
	// Provider names one of Providers.
	Provider string `yaml:"provider"`
	// Path lists, from the gateway outwards, the devices and conduits the
	// link crosses (the gateway itself may be left out).
	Path []string `yaml:"path"`
}

// DNS server roles.
const (
	DNSRoleAuthoritative = "authoritative"
	DNSRoleResolver      = "resolver"
)

// TopoDNSServer is one DNS server the site depends on.
type TopoDNSServer struct {
	Name string `yaml:"name"`
	// Role is authoritative or resolver.
	Role string `yaml:"role"`
	// Address is where it answers.
	Address netip.Addr `yaml:"address"`
	// Links are the links it is reachable over; empty means it is
	// hosted elsewhere (independent of the site's links).
	Links []string `yaml:"links"`
	// Device is the device it runs on, if on site.
	Device string `yaml:"device"`
}

func init() { sectionChecks = append(sectionChecks, checkTopology) }

// checkTopology checks the topology section, one part after the other:
// the names of power feeds, conduits and devices (one name space), the
// gateway, its LAN and HA partners, providers, the links' paths, DNS
// servers and prefixes.
func checkTopology(c *Config, k *checker) {
	t := c.Topology
	if t == nil {
		return
	}
	kinds := checkTopologyNames(t, k)
	checkTopologyGateway(c, k, kinds)
	providers := checkTopologyProviders(t, k)
	checkTopologyLinks(c, k, kinds, providers)
	checkTopologyDNS(c, k, kinds)
	for i, pf := range t.Prefixes {
		if pf != pf.Masked() {
			k.errorf(fmt.Sprintf("topology.prefixes[%d]", i), "%s has host bits set (did you mean %s?)", pf, pf.Masked())
		}
	}
}

// checkTopologyNames checks power feeds, conduits and devices and returns
// each name's kind: "power", "conduit" or "device".
func checkTopologyNames(t *Topology, k *checker) map[string]string {
	// Devices, conduits and power feeds share one name space: paths refer
	// to devices and conduits by name.
	names := map[string]string{} // name → path where defined
	define := func(path, name, what string) {
		if name == "" {
			k.errorf(path+".name", "missing: every %s needs a name", what)
			return
		}
		if prev, dup := names[name]; dup {
			k.errorf(path+".name", "duplicate name %q (already %s)", name, prev)
			return
		}
		names[name] = path
	}
	kinds := map[string]string{}
	for i := range t.PowerFeeds {
		p := fmt.Sprintf("topology.power_feeds[%d]", i)
		define(p, t.PowerFeeds[i].Name, "power feed")
		kinds[t.PowerFeeds[i].Name] = "power"
	}
	for i := range t.Conduits {
		p := fmt.Sprintf("topology.conduits[%d]", i)
		define(p, t.Conduits[i].Name, "conduit")
		kinds[t.Conduits[i].Name] = "conduit"
	}
	for i := range t.Devices {
		d := &t.Devices[i]
		p := fmt.Sprintf("topology.devices[%d]", i)
		define(p, d.Name, "device")
		if d.Kind == "" {
			d.Kind = DeviceRouter
		} else if !slices.Contains(deviceKinds, d.Kind) {
			k.errorf(p+".kind", "unknown kind %q: want %s", d.Kind, strings.Join(deviceKinds, ", "))
		}
		kinds[d.Name] = "device"
	}
	for i := range t.Devices {
		for j, f := range t.Devices[i].Power {
			if kinds[f] != "power" {
				k.errorf(fmt.Sprintf("topology.devices[%d].power[%d]", i, j), "unknown power feed %q", f)
			}
		}
	}
	return kinds
}

// checkTopologyGateway fills in the gateway's name and checks it, the LAN
// devices and the HA partners.
func checkTopologyGateway(c *Config, k *checker, kinds map[string]string) {
	t := c.Topology
	if t.Gateway == "" {
		t.Gateway = DefaultTopologyGateway
		if c.HA != nil && c.HA.Node != "" {
			t.Gateway = c.HA.Node // the ha section names this node
		}
	}
	for i, d := range t.LAN {
		if kinds[d] != "device" {
			k.errorf(fmt.Sprintf("topology.lan[%d]", i), "unknown device %q", d)
		} else if d == t.Gateway {
			k.errorf(fmt.Sprintf("topology.lan[%d]", i), "%q is the gateway itself", d)
		}
	}
	if kd, ok := kinds[t.Gateway]; ok && kd != "device" {
		k.errorf("topology.gateway", "%q is a %s, not a device", t.Gateway, kd)
	}
	for i, h := range t.HAPartners {
		p := fmt.Sprintf("topology.ha_partners[%d]", i)
		switch {
		case h == t.Gateway:
			k.errorf(p, "%q is the gateway itself", h)
		case kinds[h] != "device":
			k.errorf(p, "unknown device %q", h)
		}
	}
}

// checkTopologyProviders checks the providers and returns their names.
func checkTopologyProviders(t *Topology, k *checker) map[string]bool {
	providers := map[string]bool{}
	for i := range t.Providers {
		pr := &t.Providers[i]
		p := fmt.Sprintf("topology.providers[%d]", i)
		if pr.Name == "" {
			k.errorf(p+".name", "missing: every provider needs a name")
		} else if providers[pr.Name] {
			k.errorf(p+".name", "duplicate provider %q", pr.Name)
		}
		providers[pr.Name] = true
		for j, u := range pr.Upstreams {
			if strings.TrimSpace(u) == "" {
				k.errorf(fmt.Sprintf("%s.upstreams[%d]", p, j), "empty upstream")
			}
		}
		for j, n := range pr.Networks {
			if n != n.Masked() {
				k.errorf(fmt.Sprintf("%s.networks[%d]", p, j), "%s has host bits set (did you mean %s?)", n, n.Masked())
			}
		}
	}
	return providers
}

// checkTopologyLinks checks where the config's links are placed: each at
// most once, with a known provider and a path of known devices and
// conduits.
func checkTopologyLinks(c *Config, k *checker, kinds map[string]string, providers map[string]bool) {
	t := c.Topology
	seenLinks := map[string]int{}
	for i := range t.Links {
		tl := &t.Links[i]
		p := fmt.Sprintf("topology.links[%d]", i)
		switch {
		case tl.Name == "":
			k.errorf(p+".name", "missing: the name of a link in links")
		case c.LinkByName(tl.Name) == nil:
			k.errorf(p+".name", "unknown link %q", tl.Name)
		default:
			if j, dup := seenLinks[tl.Name]; dup {
				k.errorf(p+".name", "link %q already placed in topology.links[%d]", tl.Name, j)
			}
			seenLinks[tl.Name] = i
		}
		if tl.Provider != "" && !providers[tl.Provider] {
			k.errorf(p+".provider", "unknown provider %q", tl.Provider)
		}
		for j, e := range tl.Path {
			switch kinds[e] {
			case "device", "conduit":
			case "power":
				k.errorf(fmt.Sprintf("%s.path[%d]", p, j), "%q is a power feed: give it as a device's power", e)
			default:
				if e != t.Gateway {
					k.errorf(fmt.Sprintf("%s.path[%d]", p, j), "unknown device or conduit %q", e)
				}
			}
		}
	}
}

// checkTopologyDNS checks the DNS servers the site depends on.
func checkTopologyDNS(c *Config, k *checker, kinds map[string]string) {
	t := c.Topology
	dnsNames := map[string]bool{}
	for i := range t.DNS {
		s := &t.DNS[i]
		p := fmt.Sprintf("topology.dns[%d]", i)
		if s.Name == "" {
			s.Name = s.Address.String()
		}
		if dnsNames[s.Name] {
			k.errorf(p+".name", "duplicate DNS server %q", s.Name)
		}
		dnsNames[s.Name] = true
		if s.Role != DNSRoleAuthoritative && s.Role != DNSRoleResolver {
			k.errorf(p+".role", "want %s or %s, got %q", DNSRoleAuthoritative, DNSRoleResolver, s.Role)
		}
		if !s.Address.IsValid() {
			k.errorf(p+".address", "missing: where the server answers")
		}
		for j, l := range s.Links {
			if c.LinkByName(l) == nil {
				k.errorf(fmt.Sprintf("%s.links[%d]", p, j), "unknown link %q", l)
			}
		}
		if s.Device != "" && kinds[s.Device] != "device" && s.Device != t.Gateway {
			k.errorf(p+".device", "unknown device %q", s.Device)
		}
	}
}
