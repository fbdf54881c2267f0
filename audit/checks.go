package audit

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/multihome/multihome/config"
)

// probeHost returns the address a probe reaches, if it is an IP literal.
func probeHost(p config.Probe) (netip.Addr, bool) {
	t := p.Target
	if h, _, err := net.SplitHostPort(t); err == nil {
		t = h
	}
	a, err := netip.ParseAddr(t)
	return a.Unmap(), err == nil
}

// targets returns a link's distinct probe targets (hosts, IP or name).
func targets(l config.Link) []string {
	var out []string
	for _, p := range l.Probes {
		t := p.Target
		if a, ok := probeHost(p); ok {
			t = a.String()
		} else if h, _, err := net.SplitHostPort(t); err == nil {
			t = h
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// configChecks need no topology section.
func configChecks(c *config.Config) []Finding {
	var fs []Finding
	fs = append(fs, singleLinkChecks(c)...)
	fs = append(fs, probeTargetChecks(c)...)
	fs = append(fs, probeSetChecks(c)...)
	fs = append(fs, noTopologyChecks(c)...)
	fs = append(fs, longPrefixChecks(c)...)
	return fs
}

// singleLinkChecks report a site with one link.
func singleLinkChecks(c *config.Config) []Finding {
	if len(c.Links) != 1 {
		return nil
	}
	return []Finding{{
		Check: "single-link", Severity: High,
		Summary:        fmt.Sprintf("only one link (%s): any failure of it takes the site offline", c.Links[0].Name),
		Recommendation: "add a second link from another provider, over another medium (fibre + 5G, cable + DSL)",
		Elements:       []string{idLink(c.Links[0].Name)},
	}}
}

// probeTargetChecks report, link by link, probes of another link's
// gateway, of the link's own gateway only, or of a single target.
func probeTargetChecks(c *config.Config) []Finding {
	var fs []Finding
	gateways := map[string]string{}
	for _, l := range c.Links {
		for _, g := range []netip.Addr{l.Gateway4, l.Gateway6} {
			if g.IsValid() {
				gateways[g.String()] = l.Name
			}
		}
	}
	for _, l := range c.Links {
		ts := targets(l)
		onlyGW := len(ts) > 0
		for _, t := range ts {
			if gateways[t] != l.Name {
				onlyGW = false
			}
			if other, ok := gateways[t]; ok && other != l.Name {
				fs = append(fs, Finding{
					Check: "probe-target-other-link", Severity: Medium,
					Summary:        fmt.Sprintf("link %s probes %s, the gateway of link %s: its health then depends on the other link's network", l.Name, t, other),
					Recommendation: "probe targets beyond both providers, reached independently over each link",
					Elements:       []string{idLink(l.Name), idLink(other)},
				})
			}
		}
		switch {
		case onlyGW:
			fs = append(fs, Finding{
				Check: "probe-gateway-only", Severity: Medium,
				Summary:        fmt.Sprintf("link %s only probes its gateway %s: that proves the first hop, not the path to the Internet", l.Name, strings.Join(ts, ", ")),
				Recommendation: "give the link two or three probe targets beyond the provider, in different networks",
				Elements:       []string{idLink(l.Name)},
			})
		case len(ts) == 1:
			fs = append(fs, Finding{
				Check: "probe-single-target", Severity: Low,
				Summary:        fmt.Sprintf("link %s has one probe target (%s): when that host fails the link is declared down", l.Name, ts[0]),
				Recommendation: "add targets in other networks and set health.min_targets_up to a quorum",
				Elements:       []string{idLink(l.Name)},
			})
		}
	}
	return fs
}

// probeSetChecks report, on a site of several links, probe targets
// identical on every link or shared by all of them.
func probeSetChecks(c *config.Config) []Finding {
	if len(c.Links) <= 1 {
		return nil
	}
	var fs []Finding
	sets := map[string][]string{} // target set → links
	for _, l := range c.Links {
		ts := targets(l)
		sets[strings.Join(ts, " ")] = append(sets[strings.Join(ts, " ")], l.Name)
	}
	if len(sets) == 1 {
		for set := range sets {
			sev := Low
			if !strings.Contains(set, " ") {
				sev = Medium
			}
			fs = append(fs, Finding{
				Check: "probe-targets-identical", Severity: sev,
				Summary:        fmt.Sprintf("every link probes the same targets (%s): if they fail or filter probes, every link is declared down at once", set),
				Recommendation: "give each link at least one target of its own, in a network independent of the others'",
				Elements:       linkIDs(c),
			})
		}
		return fs
	}
	var shared []string
	for _, t := range targets(c.Links[0]) {
		if !slices.ContainsFunc(c.Links[1:], func(l config.Link) bool { return !slices.Contains(targets(l), t) }) {
			shared = append(shared, t)
		}
	}
	if len(shared) > 0 {
		fs = append(fs, Finding{
			Check: "probe-target-shared", Severity: Low,
			Summary:        fmt.Sprintf("every link probes %s: its failure counts against every link at once", strings.Join(shared, ", ")),
			Recommendation: "keep shared targets a minority of each link's quorum, or give each link targets of its own",
			Elements:       shared,
		})
	}
	return fs
}

// noTopologyChecks say what is not checked without a topology section.
func noTopologyChecks(c *config.Config) []Finding {
	if c.Topology != nil {
		return nil
	}
	return []Finding{{
		Check: "no-topology", Severity: Info,
		Summary:        "no topology section: devices, power, conduits, providers and DNS placement are not checked",
		Recommendation: "describe the site in a topology section (docs/audit.md) and run multihome audit again",
	}}
}

// longPrefixChecks report topology and BGP prefixes longer than the
// Internet's filters accept.
func longPrefixChecks(c *config.Config) []Finding {
	var fs []Finding
	var prefixes []netip.Prefix
	if c.Topology != nil {
		prefixes = append(prefixes, c.Topology.Prefixes...)
	}
	if c.BGP != nil {
		for _, p := range c.BGP.Prefixes {
			if !slices.Contains(prefixes, p) {
				prefixes = append(prefixes, p)
			}
		}
	}
	for _, p := range prefixes {
		if p.Addr().Is4() && p.Bits() > 24 || p.Addr().Is6() && p.Bits() > 48 {
			limit := "/24"
			if p.Addr().Is6() {
				limit = "/48"
			}
			fs = append(fs, Finding{
				Check: "long-prefix", Severity: High,
				Summary:        fmt.Sprintf("prefix %s is longer than %s: most networks filter it, so it is not reachable through every provider", p, limit),
				Recommendation: fmt.Sprintf("announce a %s or shorter (get one from the RIR or a provider's PI space)", limit),
				Elements:       []string{"prefix:" + p.String()},
			})
		}
	}
	return fs
}

func linkIDs(c *config.Config) []string {
	var out []string
	for _, l := range c.Links {
		out = append(out, idLink(l.Name))
	}
	return out
}

// topologyChecks simulate the failure of every single element, and check
// probe targets against providers' networks and carriers shared.
func (m *model) topologyChecks() []Finding {
	if m.topo == nil {
		return nil
	}
	var fs []Finding
	g := m.graph()
	fs = append(fs, m.haPartnerChecks()...)
	fs = append(fs, m.topologyLinkChecks()...)
	if len(m.c.Links) < 2 {
		return fs // single-link says it all
	}
	fs = append(fs, m.singleFailureChecks(g)...)
	fs = append(fs, m.sharedCarrierChecks()...)
	fs = append(fs, m.probeProviderChecks()...)
	return fs
}

// haPartnerChecks report a gateway without an HA partner.
func (m *model) haPartnerChecks() []Finding {
	if len(m.ha) != 0 || m.c.HA != nil {
		return nil
	}
	return []Finding{{
		Check: "no-ha-partner", Severity: Medium,
		Summary:        fmt.Sprintf("the gateway %s has no HA partner: when it fails, every link is lost with it", label(m.gw)),
		Recommendation: "add a second gateway with VRRP (keepalived) and list it in topology.ha_partners",
		Elements:       []string{m.gw},
	}}
}

// topologyLinkChecks report links not placed in topology.links.
func (m *model) topologyLinkChecks() []Finding {
	var fs []Finding
	for _, l := range m.c.Links {
		if !slices.ContainsFunc(m.topo.Links, func(tl config.TopoLink) bool { return tl.Name == l.Name }) {
			fs = append(fs, Finding{
				Check: "topology-link-missing", Severity: Info,
				Summary:        fmt.Sprintf("link %s is not placed in topology.links: its path and provider are not checked", l.Name),
				Recommendation: "add it to topology.links with its provider and path",
				Elements:       []string{idLink(l.Name)},
			})
		}
	}
	return fs
}

// singleFailureChecks report the devices, conduits, power feeds,
// providers and carriers whose failure alone takes the site offline.
func (m *model) singleFailureChecks(g *Graph) []Finding {
	var fs []Finding
	for _, id := range m.candidates(g) {
		if id == m.gw || kindOf(id) == KindDNS || kindOf(id) == KindLink {
			continue
		}
		if m.internetUp(failures{id: true}) {
			continue
		}
		f := Finding{Severity: High, Elements: []string{id}}
		name := label(id)
		switch kindOf(id) {
		case KindDevice:
			f.Check = "shared-device"
			f.Summary = fmt.Sprintf("every link goes through %s %s: when it fails the site is offline", orDevice(m.deviceKind(id)), name)
			f.Recommendation = fmt.Sprintf("give each link its own %s, or make it a redundant pair (stacking, VRRP)", orDevice(m.deviceKind(id)))
		case KindConduit:
			f.Check = "shared-conduit"
			f.Summary = fmt.Sprintf("every link runs through %s: one excavator or fire cuts them all", name)
			f.Recommendation = "bring a link in through another building entry or duct (diverse routing, ask the providers for route diversity)"
		case KindPower:
			f.Check = "shared-power"
			var fed []string
			for _, d := range sortedKeys(m.power) {
				if m.down(failures{id: true}, d) {
					fed = append(fed, label(d))
				}
			}
			f.Summary = fmt.Sprintf("power feed %s alone powers %s: its failure takes the site offline", name, strings.Join(fed, ", "))
			f.Recommendation = "give the devices on the links' paths a second power supply on another feed, or a UPS"
		case KindProvider:
			f.Check = "single-provider"
			f.Summary = fmt.Sprintf("every link depends on provider %s", name)
			f.Recommendation = "take a link from a provider with its own network and upstreams"
		case KindCarrier:
			f.Check = "shared-carrier"
			f.Summary = fmt.Sprintf("every provider reaches the Internet only through %s: its outage takes every link down", name)
			f.Recommendation = "choose a provider that does not buy transit from " + name
		default:
			continue
		}
		fs = append(fs, f)
	}
	return fs
}

// sharedCarrierChecks report providers sharing an upstream carrier, when
// not every link is cut.
func (m *model) sharedCarrierChecks() []Finding {
	var fs []Finding
	users := map[string][]string{}
	for _, id := range sortedKeys(m.providers) {
		for _, u := range m.providers[id].upstreams {
			users[u] = append(users[u], id)
		}
	}
	for _, u := range sortedKeys(users) {
		ps := users[u]
		if len(ps) < 2 || !m.internetUp(failures{u: true}) {
			continue
		}
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = label(p)
		}
		fs = append(fs, Finding{
			Check: "shared-carrier", Severity: Medium,
			Summary:        fmt.Sprintf("providers %s share the upstream %s: its outage or a route leak hits them together", strings.Join(names, " and "), label(u)),
			Recommendation: "prefer providers whose upstreams do not overlap, or check that the others have enough capacity alone",
			Elements:       append([]string{u}, ps...),
		})
	}
	return fs
}

// probeProviderChecks report probe targets inside a provider's network:
// the link's own (only) or another link's.
func (m *model) probeProviderChecks() []Finding {
	var fs []Finding
	for _, l := range m.links {
		cl := m.c.LinkByName(l.name)
		var own, other []string
		var otherProv string
		n := 0
		for _, p := range cl.Probes {
			a, ok := probeHost(p)
			if !ok {
				continue
			}
			n++
			for _, pid := range sortedKeys(m.providers) {
				if !slices.ContainsFunc(m.providers[pid].networks, func(pf netip.Prefix) bool { return pf.Contains(a) }) {
					continue
				}
				if pid == l.provider {
					own = append(own, a.String())
				} else {
					other = append(other, a.String())
					otherProv = pid
				}
			}
		}
		if n > 0 && len(own) == n {
			fs = append(fs, Finding{
				Check: "probe-inside-provider", Severity: Medium,
				Summary:        fmt.Sprintf("every probe target of link %s (%s) is inside its provider %s's network: a failure beyond it goes unnoticed", l.name, strings.Join(own, ", "), label(l.provider)),
				Recommendation: "add probe targets outside the provider's network",
				Elements:       []string{idLink(l.name), l.provider},
			})
		}
		if len(other) > 0 {
			fs = append(fs, Finding{
				Check: "probe-inside-provider", Severity: Medium,
				Summary:        fmt.Sprintf("link %s probes %s inside provider %s's network: another link's provider decides whether this link looks healthy", l.name, strings.Join(other, ", "), label(otherProv)),
				Recommendation: "probe targets independent of every provider of the site",
				Elements:       []string{idLink(l.name), otherProv},
			})
		}
	}
	return fs
}

func orDevice(kind string) string {
	if kind == "" {
		return "device"
	}
	return kind
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// dnsChecks look at the authoritative servers and resolvers.
func dnsChecks(c *config.Config, m *model) []Finding {
	var fs []Finding
	for _, role := range []string{config.DNSRoleAuthoritative, config.DNSRoleResolver} {
		fs = append(fs, m.dnsRoleChecks(role)...)
	}
	return fs
}

// dnsRoleChecks look at the DNS servers of one role: a single server,
// authoritative servers in one prefix, single failures silencing them.
func (m *model) dnsRoleChecks(role string) []Finding {
	var servers []mdns
	for _, s := range m.dns {
		if s.role == role {
			servers = append(servers, s)
		}
	}
	if len(servers) == 0 {
		return nil
	}
	var fs []Finding
	sev, what := High, "authoritative"
	if role == config.DNSRoleResolver {
		sev, what = Medium, "resolver"
	}
	if len(servers) == 1 {
		f := Finding{
			Check: "dns-single-" + what, Severity: sev,
			Summary:        fmt.Sprintf("one %s DNS server (%s): when it or its network fails, %s", what, servers[0].name, dnsImpact(role)),
			Recommendation: dnsAdvice(role, m),
			Elements:       []string{servers[0].id},
		}
		fs = append(fs, f)
	} else if role == config.DNSRoleAuthoritative {
		fs = append(fs, dnsPrefixChecks(servers)...)
	}
	fs = append(fs, m.dnsFailureChecks(role, servers, sev, what)...)
	return fs
}

// dnsPrefixChecks report authoritative servers all in one /24 or /48.
func dnsPrefixChecks(servers []mdns) []Finding {
	nets := map[netip.Prefix]bool{}
	var addrs []string
	for _, s := range servers {
		if !s.addr.IsValid() {
			nets[netip.Prefix{}] = true
			continue
		}
		bits := 24
		if s.addr.Is6() {
			bits = 48
		}
		p, _ := s.addr.Prefix(bits)
		nets[p] = true
		addrs = append(addrs, s.addr.String())
	}
	if len(nets) == 1 && len(addrs) == len(servers) {
		return []Finding{{
			Check: "dns-authoritative-one-prefix", Severity: Medium,
			Summary:        fmt.Sprintf("every authoritative server (%s) is in one /24 or /48: one routing problem makes the zone unreachable", strings.Join(addrs, ", ")),
			Recommendation: "run a secondary in another network and another AS (RFC 2182)",
			Elements:       serverIDs(servers),
		}}
	}
	return nil
}

// dnsFailureChecks report single failures that silence the role but
// leave the Internet up. Elements that do so only by taking down a link
// that is itself such a failure are covered by that link's finding.
func (m *model) dnsFailureChecks(role string, servers []mdns, sev Severity, what string) []Finding {
	var fs []Finding
	g := m.graph()
	var linkSPOFs []string
	for _, l := range m.links {
		f := failures{idLink(l.name): true}
		if !m.serviceUp(f, role) && m.internetUp(f) {
			linkSPOFs = append(linkSPOFs, l.name)
		}
	}
	for _, id := range m.candidates(g) {
		f := failures{id: true}
		if m.serviceUp(f, role) || !m.internetUp(f) {
			continue
		}
		if len(servers) == 1 && (id == servers[0].id || id == servers[0].device) {
			continue
		}
		if kindOf(id) != KindLink && slices.ContainsFunc(linkSPOFs, func(l string) bool { return !m.linkUp(f, l) }) {
			continue
		}
		fd := Finding{Severity: sev, Elements: []string{id}}
		if kindOf(id) == KindLink {
			fd.Check = "dns-" + what + "-one-link"
			fd.Summary = fmt.Sprintf("every %s DNS server is reachable only over link %s: when it fails, %s", what, label(id), dnsImpact(role))
			fd.Recommendation = "make a server reachable over every link (an address per link in the delegation), or host one elsewhere"
		} else {
			fd.Check = "dns-" + what + "-spof"
			fd.Summary = fmt.Sprintf("every %s DNS server depends on %s: when it fails, %s", what, label(id), dnsImpact(role))
			fd.Recommendation = dnsAdvice(role, m)
		}
		fs = append(fs, fd)
	}
	return fs
}

func serverIDs(ss []mdns) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.id)
	}
	return out
}

func dnsImpact(role string) string {
	if role == config.DNSRoleResolver {
		return "the site's hosts cannot resolve names although the links work"
	}
	return "the site's names stop resolving for the whole Internet"
}

func dnsAdvice(role string, m *model) string {
	if role == config.DNSRoleResolver {
		return "give hosts two resolvers on different devices, reachable over different links"
	}
	if m.dnsFromConfig {
		return "add secondaries in other networks (dns.zones[].transfer.notify) and list them as NS records (RFC 2182)"
	}
	return "add a secondary authoritative server in another network, independent of the site's links (RFC 2182)"
}

// haChecks report on the pair of the ha section: a partner the running
// daemon does not see leaves the gateway a single point of failure.
func haChecks(c *config.Config, m *model, live Live) []Finding {
	if c.HA == nil {
		return nil
	}
	p := idDevice(c.HA.Partner)
	switch {
	case live.HAPartnerSeen == nil:
		return []Finding{{
			Check: "ha-partner-assumed", Severity: Info,
			Summary:        fmt.Sprintf("the HA partner %s is counted from the ha section: the running daemon's audit checks that it is seen", c.HA.Partner),
			Recommendation: "run the audit through the daemon (GET /api/v1/audit, the dashboard) to check the partner is alive",
			Elements:       []string{m.gw, p},
		}}
	case !*live.HAPartnerSeen:
		return []Finding{{
			Check: "ha-partner-unseen", Severity: High,
			Summary:        fmt.Sprintf("the HA partner %s is configured but not seen (no sync traffic for 5 s): until it is, the gateway %s is a single point of failure", c.HA.Partner, label(m.gw)),
			Recommendation: fmt.Sprintf("check that multihome runs on %s and that the sync link (%s) is up; GET /api/v1/ha on both nodes", c.HA.Partner, c.HA.Sync.Interface),
			Elements:       []string{m.gw, p},
		}}
	}
	return nil
}
