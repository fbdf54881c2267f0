package audit

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/multihome/multihome/config"
)

// Node kinds of the graph.
const (
	KindLAN      = "lan"
	KindInternet = "internet"
	KindDevice   = "device" // Node.Detail holds the device kind
	KindConduit  = "conduit"
	KindPower    = "power"
	KindLink     = "link"
	KindProvider = "provider"
	KindCarrier  = "carrier"
	KindDNS      = "dns"    // Node.Detail holds the role
	KindRouter   = "router" // found by discovery on several links' paths
)

// Edge kinds.
const (
	EdgeData    = "data"    // traffic flows along it
	EdgePower   = "power"   // a device draws power from a feed
	EdgeService = "service" // a DNS server is reached over a link or runs on a device
	// EdgeDiscovered joins a link to a router discovery found on its path.
	EdgeDiscovered = "discovered"
)

// Node is an element of the site.
type Node struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Label  string `json:"label"`
	Detail string `json:"detail,omitempty"`
	// SPOF marks a single point of failure of the LAN's Internet access.
	SPOF bool `json:"spof,omitempty"`
}

// Edge joins two nodes; edges are undirected.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
}

// Graph is the site model.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node returns the node with id, or nil.
func (g *Graph) Node(id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

func (g *Graph) addNode(id, kind, label, detail string) {
	if g.Node(id) == nil {
		g.Nodes = append(g.Nodes, Node{ID: id, Kind: kind, Label: label, Detail: detail})
	}
}

func (g *Graph) addEdge(a, b, kind string) {
	if a == b {
		return
	}
	for _, e := range g.Edges {
		if e.Kind == kind && (e.From == a && e.To == b || e.From == b && e.To == a) {
			return
		}
	}
	g.Edges = append(g.Edges, Edge{From: a, To: b, Kind: kind})
}

// Node IDs.
const (
	idLAN      = "lan"
	idInternet = "internet"
)

func idDevice(n string) string   { return "device:" + n }
func idConduit(n string) string  { return "conduit:" + n }
func idPower(n string) string    { return "power:" + n }
func idLink(n string) string     { return "link:" + n }
func idProvider(n string) string { return "provider:" + n }
func idCarrier(n string) string  { return "carrier:" + n }
func idDNS(n string) string      { return "dns:" + n }
func idRouter(n string) string   { return "router:" + n }

// label strips the kind from a node ID.
func label(id string) string {
	if k, after, ok := strings.Cut(id, ":"); ok && slices.Contains(idKinds, k) {
		return after
	}
	return id
}

var idKinds = []string{KindDevice, KindConduit, KindPower, KindLink, KindProvider, KindCarrier, KindDNS, KindRouter, "prefix"}

type mlink struct {
	name     string
	path     []string // node IDs, gateway side first
	provider string   // node ID or ""
}

type mprovider struct {
	id        string
	upstreams []string // carrier or provider node IDs
	networks  []netip.Prefix
}

type mdns struct {
	id, name, role string
	addr           netip.Addr
	links          []string // link names; empty: hosted elsewhere
	device         string   // node ID or ""
}

// model is the site as the checks see it: built from the topology section
// when there is one, from the links alone otherwise.
type model struct {
	c         *config.Config
	topo      *config.Topology
	gw        string   // gateway node ID
	ha        []string // HA partner node IDs
	lan       []string // device IDs between the LAN and the gateway(s)
	power     map[string][]string
	links     []mlink
	providers map[string]*mprovider
	dns       []mdns
	// dnsFromConfig is set when the DNS servers were derived from the dns
	// section rather than declared in the topology.
	dnsFromConfig bool
}

func newModel(c *config.Config) *model {
	m := &model{c: c, topo: c.Topology, power: map[string][]string{}, providers: map[string]*mprovider{}}
	gwName := config.DefaultTopologyGateway
	if c.HA != nil {
		gwName = c.HA.Node
	}
	kinds := map[string]string{}
	if t := m.topo; t != nil {
		gwName = t.Gateway
		for _, d := range t.Devices {
			kinds[d.Name] = KindDevice
			for _, f := range d.Power {
				m.power[idDevice(d.Name)] = append(m.power[idDevice(d.Name)], idPower(f))
			}
		}
		for _, cd := range t.Conduits {
			kinds[cd.Name] = KindConduit
		}
		for _, h := range t.HAPartners {
			m.ha = append(m.ha, idDevice(h))
		}
		for _, d := range t.LAN {
			m.lan = append(m.lan, idDevice(d))
		}
		byASN := map[string]string{}
		for _, p := range t.Providers {
			if p.ASN != 0 {
				byASN["AS"+strconv.FormatUint(uint64(p.ASN), 10)] = idProvider(p.Name)
			}
		}
		for _, p := range t.Providers {
			mp := &mprovider{id: idProvider(p.Name), networks: p.Networks}
			for _, u := range p.Upstreams {
				u = normCarrier(u)
				switch {
				case slices.ContainsFunc(t.Providers, func(q config.TopoProvider) bool { return q.Name == u }):
					mp.upstreams = append(mp.upstreams, idProvider(u))
				case byASN[u] != "":
					mp.upstreams = append(mp.upstreams, byASN[u])
				default:
					mp.upstreams = append(mp.upstreams, idCarrier(u))
				}
			}
			m.providers[mp.id] = mp
		}
	}
	m.gw = idDevice(gwName)
	for _, l := range c.Links {
		ml := mlink{name: l.Name}
		if t := m.topo; t != nil {
			for _, tl := range t.Links {
				if tl.Name != l.Name {
					continue
				}
				if tl.Provider != "" {
					ml.provider = idProvider(tl.Provider)
				}
				for _, e := range tl.Path {
					if e == gwName || slices.Contains(m.ha, idDevice(e)) {
						continue
					}
					if kinds[e] == KindConduit {
						ml.path = append(ml.path, idConduit(e))
					} else {
						ml.path = append(ml.path, idDevice(e))
					}
				}
			}
		}
		m.links = append(m.links, ml)
	}
	m.dns = dnsServers(c, m)
	return m
}

// normCarrier writes AS numbers as "AS3356" whatever their case.
func normCarrier(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2 && strings.EqualFold(s[:2], "as") {
		if _, err := strconv.ParseUint(s[2:], 10, 32); err == nil {
			return "AS" + s[2:]
		}
	}
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return "AS" + s
	}
	return s
}

// dnsServers returns the DNS servers of the topology section or, without
// one, those that follow from the dns section: this gateway (on its listen
// addresses) and the secondaries it notifies.
func dnsServers(c *config.Config, m *model) []mdns {
	var out []mdns
	if m.topo != nil && len(m.topo.DNS) > 0 {
		for _, s := range m.topo.DNS {
			d := mdns{id: idDNS(s.Name), name: s.Name, role: s.Role, addr: s.Address, links: s.Links}
			if s.Device != "" {
				d.device = idDevice(s.Device)
			}
			out = append(out, d)
		}
		return out
	}
	if c.DNS == nil {
		return nil
	}
	serving := false
	var secondaries []netip.Addr
	for _, z := range c.DNS.Zones {
		if z.Mode == config.DNSModePush {
			continue
		}
		serving = true
		for _, n := range z.Transfer.Notify {
			if !slices.Contains(secondaries, n.Addr()) {
				secondaries = append(secondaries, n.Addr())
			}
		}
	}
	if !serving {
		return nil
	}
	m.dnsFromConfig = true
	var all []string
	for _, l := range c.Links {
		all = append(all, l.Name)
	}
	// The gateway is one server, whatever its number of listen addresses:
	// reachable over the links whose addresses it listens on, over every
	// link when it listens on a wildcard or another address.
	self := mdns{id: idDNS("multihome"), name: "multihome", role: config.DNSRoleAuthoritative, device: m.gw}
	var over []string
	wildcard := false
	for _, ap := range c.DNS.Listen {
		a := ap.Addr().Unmap()
		if a.IsLoopback() {
			continue
		}
		if !self.addr.IsValid() && !a.IsUnspecified() {
			self.addr = a
		}
		matched := false
		for _, l := range c.Links {
			if l.Address4 == a || l.Address6 == a {
				matched = true
				if !slices.Contains(over, l.Name) {
					over = append(over, l.Name)
				}
			}
		}
		wildcard = wildcard || !matched
	}
	self.links = over
	if wildcard || len(over) == 0 {
		self.links = all
	}
	out = append(out, self)
	for _, a := range secondaries {
		name := "secondary " + a.String()
		out = append(out, mdns{id: idDNS(name), name: name, role: config.DNSRoleAuthoritative, addr: a})
	}
	return out
}

// graph renders the model as nodes and edges.
func (m *model) graph() *Graph {
	g := &Graph{}
	m.addSite(g)
	m.addLinks(g)
	// Providers after links so that a provider's upstream providers exist.
	m.addProviders(g)
	m.addPower(g)
	m.addDNS(g)
	return g
}

// addSite adds the LAN, the gateway and its HA partners, the devices between
// them, the conduits and the Internet.
func (m *model) addSite(g *Graph) {
	g.addNode(idLAN, KindLAN, "LAN", "")
	g.addNode(m.gw, KindDevice, label(m.gw), config.DeviceGateway)
	if m.topo != nil {
		for _, d := range m.topo.Devices {
			g.addNode(idDevice(d.Name), KindDevice, d.Name, d.Kind)
		}
	}
	lanSide := idLAN
	for _, d := range m.lan {
		g.addEdge(lanSide, d, EdgeData)
		lanSide = d
	}
	g.addEdge(lanSide, m.gw, EdgeData)
	for _, h := range m.ha {
		g.addNode(h, KindDevice, label(h), m.deviceKind(h))
		g.addEdge(lanSide, h, EdgeData)
	}
	if m.topo != nil {
		for _, cd := range m.topo.Conduits {
			g.addNode(idConduit(cd.Name), KindConduit, cd.Name, cd.Description)
		}
	}
	g.addNode(idInternet, KindInternet, "Internet", "")
}

// addLinks adds each link and the path from the gateways to it.
func (m *model) addLinks(g *Graph) {
	for _, l := range m.links {
		prev := []string{m.gw}
		prev = append(prev, m.ha...)
		for _, e := range l.path {
			g.addNode(e, kindOf(e), label(e), m.deviceKind(e))
			for _, p := range prev {
				g.addEdge(p, e, EdgeData)
			}
			prev = []string{e}
		}
		lid := idLink(l.name)
		g.addNode(lid, KindLink, l.name, m.linkDetail(l.name))
		for _, p := range prev {
			g.addEdge(p, lid, EdgeData)
		}
		if l.provider == "" {
			g.addEdge(lid, idInternet, EdgeData)
			continue
		}
		g.addEdge(lid, l.provider, EdgeData)
	}
}

// addProviders adds the providers and their upstreams.
func (m *model) addProviders(g *Graph) {
	provs := make([]string, 0, len(m.providers))
	for id := range m.providers {
		provs = append(provs, id)
	}
	slices.Sort(provs)
	for _, id := range provs {
		p := m.providers[id]
		g.addNode(id, KindProvider, label(id), "")
		if len(p.upstreams) == 0 {
			g.addEdge(id, idInternet, EdgeData)
		}
		for _, u := range p.upstreams {
			g.addNode(u, kindOf(u), label(u), "")
			g.addEdge(id, u, EdgeData)
			if kindOf(u) == KindCarrier {
				g.addEdge(u, idInternet, EdgeData)
			}
		}
	}
}

// addPower adds the power feeds and what they feed.
func (m *model) addPower(g *Graph) {
	if m.topo != nil {
		for _, f := range m.topo.PowerFeeds {
			g.addNode(idPower(f.Name), KindPower, f.Name, f.Description)
		}
	}
	devs := make([]string, 0, len(m.power))
	for d := range m.power {
		devs = append(devs, d)
	}
	slices.Sort(devs)
	for _, d := range devs {
		for _, f := range m.power[d] {
			g.addNode(d, KindDevice, label(d), m.deviceKind(d))
			g.addEdge(f, d, EdgePower)
		}
	}
}

// addDNS adds the DNS servers and the links and devices they depend on.
func (m *model) addDNS(g *Graph) {
	for _, s := range m.dns {
		detail := s.role
		if s.addr.IsValid() {
			detail += " " + s.addr.String()
		}
		g.addNode(s.id, KindDNS, s.name, detail)
		for _, l := range s.links {
			g.addEdge(s.id, idLink(l), EdgeService)
		}
		if s.device != "" {
			g.addEdge(s.id, s.device, EdgeService)
		}
	}
}

func kindOf(id string) string {
	k, _, ok := strings.Cut(id, ":")
	if !ok || !slices.Contains(idKinds, k) {
		return id
	}
	return k
}

func (m *model) deviceKind(id string) string {
	if id == m.gw {
		return config.DeviceGateway
	}
	if m.topo != nil && kindOf(id) == KindDevice {
		for _, d := range m.topo.Devices {
			if idDevice(d.Name) == id {
				return d.Kind
			}
		}
	}
	return ""
}

func (m *model) linkDetail(name string) string {
	l := m.c.LinkByName(name)
	if l == nil {
		return ""
	}
	return l.Interface
}

// failures is a set of failed node IDs.
type failures map[string]bool

// down reports whether the node is failed, directly or because every
// power feed it draws from is.
func (m *model) down(f failures, id string) bool {
	if f[id] {
		return true
	}
	feeds := m.power[id]
	if len(feeds) == 0 {
		return false
	}
	for _, p := range feeds {
		if !f[p] {
			return false
		}
	}
	return true
}

func (m *model) gatewayUp(f failures) bool {
	if slices.ContainsFunc(m.lan, func(d string) bool { return m.down(f, d) }) {
		return false // the LAN no longer reaches any gateway
	}
	if !m.down(f, m.gw) {
		return true
	}
	return slices.ContainsFunc(m.ha, func(h string) bool { return !m.down(f, h) })
}

func (m *model) providerUp(f failures, id string, depth int) bool {
	if m.down(f, id) || depth > 8 {
		return false
	}
	p := m.providers[id]
	if p == nil || len(p.upstreams) == 0 {
		return true
	}
	for _, u := range p.upstreams {
		if kindOf(u) == KindProvider {
			if m.providerUp(f, u, depth+1) {
				return true
			}
		} else if !m.down(f, u) {
			return true
		}
	}
	return false
}

func (m *model) linkUp(f failures, name string) bool {
	if !m.gatewayUp(f) || m.down(f, idLink(name)) {
		return false
	}
	for _, l := range m.links {
		if l.name != name {
			continue
		}
		for _, e := range l.path {
			if m.down(f, e) {
				return false
			}
		}
		return l.provider == "" || m.providerUp(f, l.provider, 0)
	}
	return false
}

func (m *model) internetUp(f failures) bool {
	return slices.ContainsFunc(m.links, func(l mlink) bool { return m.linkUp(f, l.name) })
}

func (m *model) dnsUp(f failures, s mdns) bool {
	if m.down(f, s.id) || s.device != "" && m.down(f, s.device) && !(s.device == m.gw && m.gatewayUp(f)) {
		return false
	}
	if len(s.links) == 0 {
		return true
	}
	return slices.ContainsFunc(s.links, func(l string) bool { return m.linkUp(f, l) })
}

// serviceUp reports whether at least one DNS server of the role works; it
// is true when there is none.
func (m *model) serviceUp(f failures, role string) bool {
	any := false
	for _, s := range m.dns {
		if s.role != role {
			continue
		}
		any = true
		if m.dnsUp(f, s) {
			return true
		}
	}
	return !any
}

// candidates are the elements whose single failure is simulated.
func (m *model) candidates(g *Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		switch n.Kind {
		case KindLAN, KindInternet:
			continue
		}
		out = append(out, n.ID)
	}
	return out
}

// spofs returns the elements whose failure alone cuts the LAN off the
// Internet, and a minimum vertex cut of the data graph. The first combines
// the graph's articulation points with the power and upstream dependencies
// only simulation sees.
func (m *model) spofs(g *Graph) (spofs, cut []string) {
	for _, id := range m.candidates(g) {
		if !m.internetUp(failures{id: true}) {
			spofs = append(spofs, id)
		}
	}
	for _, a := range ArticulationPoints(g, idLAN, idInternet) {
		if !slices.Contains(spofs, a) {
			spofs = append(spofs, a)
		}
	}
	slices.Sort(spofs)
	return spofs, MinCut(g, idLAN, idInternet)
}

// Services whose failure sets are reported.
const (
	ServiceInternet      = "internet"
	ServiceAuthoritative = "authoritative-dns"
	ServiceResolvers     = "resolvers"
)

// serviceCuts returns, for each service the site has, a smallest set of
// elements (of at most two) whose failure together stops it, with power
// and upstream dependencies counted; services that survive any two
// failures are left out.
func (m *model) serviceCuts(g *Graph) map[string][]string {
	services := map[string]func(failures) bool{ServiceInternet: m.internetUp}
	for _, s := range m.dns {
		role := s.role
		name := ServiceAuthoritative
		if role == config.DNSRoleResolver {
			name = ServiceResolvers
		}
		services[name] = func(f failures) bool { return m.serviceUp(f, role) }
	}
	cands := m.candidates(g)
	out := map[string][]string{}
	for _, name := range sortedKeys(services) {
		up := services[name]
		if cut := smallestCut(cands, up); cut != nil {
			out[name] = cut
		}
	}
	return out
}

func smallestCut(cands []string, up func(failures) bool) []string {
	for _, a := range cands {
		if !up(failures{a: true}) {
			return []string{a}
		}
	}
	for i, a := range cands {
		for _, b := range cands[i+1:] {
			if !up(failures{a: true, b: true}) {
				return []string{a, b}
			}
		}
	}
	return nil
}
