package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multihome/multihome/uci"
)

// mwan3's defaults (mwan3track, lib/mwan3/mwan3.sh).
const (
	mwanInterval    = 10 * time.Second
	mwanTimeout     = 4 * time.Second
	mwanDown        = 5
	mwanUp          = 5
	mwanStickyTime  = 600 * time.Second
	mwanFailLatency = 1000 * time.Millisecond
	mwanRecLatency  = 500 * time.Millisecond
	mwanFailLoss    = 40
	mwanRecLoss     = 10
)

// The options each section type may have; anything else is reported.
var mwanKnown = map[string][]string{
	"interface": {"enabled", "initial_state", "family", "track_ip", "track_method", "reliability", "count", "size", "max_ttl",
		"check_quality", "failure_latency", "failure_loss", "recovery_latency", "recovery_loss", "timeout", "interval",
		"failure_interval", "recovery_interval", "keep_failure_interval", "down", "up", "flush_conntrack", "httping_ssl"},
	"member": {"interface", "metric", "weight"},
	"policy": {"use_member", "last_resort"},
	"rule":   {"src_ip", "src_iface", "src_port", "dest_ip", "dest_port", "proto", "ipset", "sticky", "timeout", "use_policy", "family", "logging"},
}

// mwan3 is one conversion in progress.
type mwan3 struct {
	f, net *uci.File
	d      *doc
	// byIface maps an mwan3 interface name to its link (nil: dropped).
	byIface   map[string]*link
	linkNames map[string]bool
	polNames  map[string]bool
	// policies maps an mwan3 policy name to its multihome policy.
	policies map[string]*policy
	// members maps a policy name to its members' metric and weight by link.
	members map[string][]member
	sticky  map[string]*policy // "policy/timeout" → sticky variant
}

// MWAN3 converts mwan3's config (/etc/config/mwan3). network is OpenWrt's
// /etc/config/network, for kernel device names and static gateways and
// addresses; without it the mwan3 interface names are used as device
// names, which the notes say.
func MWAN3(f, network *uci.File) (*Result, error) {
	m := &mwan3{f: f, net: network, d: &doc{}, byIface: map[string]*link{}, linkNames: map[string]bool{},
		polNames: map[string]bool{}, policies: map[string]*policy{}, members: map[string][]member{}, sticky: map[string]*policy{}}
	src := f.Name
	if network != nil {
		src += " and " + network.Name
	}
	m.d.title = []string{
		"multihome.yaml imported from mwan3 (" + src + ") by `multihome import mwan3`.",
		"Check it with `multihome check-config FILE`. Settings without an exact",
		"equivalent are listed in NOTE comments where they would go (and on stderr);",
		"docs/import.md shows what maps to what.",
	}
	for _, s := range f.Sections {
		known, ok := mwanKnown[s.Type]
		if !ok {
			m.note(&m.d.notes, s.Line, "section %s %q: no equivalent (%s)", s.Type, s.Name, globalsHint(s))
			continue
		}
		for _, o := range s.Options {
			if !slices.Contains(known, o.Name) {
				m.note(&m.d.notes, o.Line, "%s %s: unknown option %s: not imported", s.Type, s.Name, o.Name)
			}
		}
	}
	if err := m.interfaces(); err != nil {
		return nil, err
	}
	if len(m.d.links) == 0 {
		return nil, fmt.Errorf("%s: no enabled interface (option enabled '1'): nothing to import", f.Name)
	}
	m.memberships()
	m.rules()
	m.assignTiers()
	m.d.notes = append(m.d.notes, Note{Pos: f.Name, Msg: "health timings are mwan3's (probe every interval, down after `down` failed rounds);\n" +
		"multihome's defaults (200ms, 3) detect a failure in well under a second: drop the health blocks to use them"})
	return m.d.result(), nil
}

func globalsHint(s *uci.Section) string {
	if s.Type == "globals" {
		var o []string
		for _, x := range s.Options {
			o = append(o, x.Name)
		}
		return "mwan3 globals " + strings.Join(o, ", ") + "; multihome's marks and tables: outbound.mark_mask, table_base, rule_priority"
	}
	return "not an mwan3 section type"
}

func (m *mwan3) pos(line int) string { return fmt.Sprintf("%s:%d", m.f.Name, line) }

func (m *mwan3) note(to *[]Note, line int, format string, a ...any) {
	*to = append(*to, Note{Pos: m.pos(line), Msg: fmt.Sprintf(format, a...)})
}

func get(s *uci.Section, name, def string) string {
	if v, ok := s.Get(name); ok {
		return v
	}
	return def
}

// on reads a UCI boolean the way config_get_bool does.
func on(s *uci.Section, name string) bool {
	switch strings.ToLower(get(s, name, "0")) {
	case "1", "yes", "on", "true", "enabled":
		return true
	}
	return false
}

func line(s *uci.Section, name string) int {
	if o := s.Option(name); o != nil {
		return o.Line
	}
	return s.Line
}

// num reads an integer option; a bad value is noted and the default used.
func (m *mwan3) num(s *uci.Section, name string, def int, notes *[]Note) int {
	v, ok := s.Get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	low := 1
	if strings.HasSuffix(name, "_loss") {
		low = 0 // a loss percentage may be 0
	}
	if err != nil || n < low {
		m.note(notes, line(s, name), "%s %s: %s %q is not a number of at least %d: using mwan3's default %d", s.Type, s.Name, name, v, low, def)
		return def
	}
	return n
}

// interfaces makes one link per enabled interface, merging an IPv4 and
// an IPv6 interface on the same device into one link.
func (m *mwan3) interfaces() error {
	for _, s := range m.f.Of("interface") {
		if !on(s, "enabled") {
			m.note(&m.d.droppedLinks, line(s, "enabled"), "interface %s is not enabled (option enabled '1'): not imported", s.Name)
			m.byIface[s.Name] = nil
			continue
		}
		fam := get(s, "family", "ipv4")
		if fam != "ipv4" && fam != "ipv6" {
			m.note(&m.d.droppedLinks, line(s, "family"), "interface %s: family %q: want ipv4 or ipv6: not imported", s.Name, fam)
			m.byIface[s.Name] = nil
			continue
		}
		var notes []Note
		dev, gw, addr := m.device(s, fam, &notes)
		var l *link
		for _, o := range m.d.links {
			if o.iface == dev {
				l = o
			}
		}
		if l != nil && (fam == "ipv4" && l.family4 || fam == "ipv6" && l.fam6) {
			m.note(&m.d.droppedLinks, s.Line, "interface %s: device %s already imported as link %s for %s: not imported", s.Name, dev, l.name, fam)
			m.byIface[s.Name] = nil
			continue
		}
		if l == nil {
			l = &link{name: linkName(s.Name, m.linkNames), iface: dev, source: fmt.Sprintf("%s interface %s", m.pos(s.Line), s.Name)}
			m.d.links = append(m.d.links, l)
		} else {
			l.source += fmt.Sprintf(" + %s interface %s", m.pos(s.Line), s.Name)
		}
		l.notes = append(l.notes, notes...)
		m.byIface[s.Name] = l
		if fam == "ipv4" {
			l.family4, l.v4name, l.gw4, l.addr4 = true, s.Name, gw, addr
		} else {
			l.fam6, l.v6name, l.gw6, l.addr6 = true, s.Name, gw, addr
		}
		m.track(s, l, fam)
	}
	return nil
}

// device finds the kernel device, gateway and address of an mwan3
// interface in the network config.
func (m *mwan3) device(s *uci.Section, fam string, notes *[]Note) (dev string, gw, addr netip.Addr) {
	if m.net == nil {
		dev = s.Name
		// OpenWrt names the IPv6 side of "wan" "wan6".
		if base, ok := strings.CutSuffix(s.Name, "6"); ok && fam == "ipv6" {
			if b := m.f.Section(base); b != nil && b.Type == "interface" && get(b, "family", "ipv4") == "ipv4" && on(b, "enabled") {
				dev = base
			}
		}
		m.note(notes, s.Line, "interface %s: no network config (--network /etc/config/network): device %q is the logical name, set the kernel interface", s.Name, dev)
		return dev, gw, addr
	}
	n := m.net.Section(s.Name)
	if n == nil || n.Type != "interface" {
		m.note(notes, s.Line, "interface %s: not in %s: device %q is a guess, set the kernel interface", s.Name, m.net.Name, s.Name)
		return s.Name, gw, addr
	}
	npos := fmt.Sprintf("%s:%d", m.net.Name, n.Line)
	dev = get(n, "device", get(n, "ifname", ""))
	for i := 0; strings.HasPrefix(dev, "@") && i < 8; i++ { // alias: @wan
		if a := m.net.Section(dev[1:]); a != nil {
			dev = get(a, "device", get(a, "ifname", ""))
		} else {
			break
		}
	}
	if f := strings.Fields(dev); len(f) > 1 {
		*notes = append(*notes, Note{npos, fmt.Sprintf("interface %s: several devices %q: using %s", s.Name, dev, f[0])})
		dev = f[0]
	}
	proto := get(n, "proto", "none")
	switch proto {
	case "pppoe", "pppoa", "3g", "ppp", "l2tp", "pptp":
		dev = proto + "-" + s.Name // netifd names the session's device
	case "wireguard", "gre", "gretap", "6in4", "6to4", "6rd", "dslite":
		dev = s.Name
	case "qmi", "ncm", "mbim", "modemmanager":
		*notes = append(*notes, Note{npos, fmt.Sprintf("interface %s: proto %s: the data interface (e.g. wwan0) is not in the config: check %q", s.Name, proto, dev)})
	}
	if dev == "" {
		*notes = append(*notes, Note{npos, fmt.Sprintf("interface %s: no device or ifname: set the kernel interface", s.Name)})
		dev = s.Name
	}
	if proto == "static" {
		if fam == "ipv4" {
			gw, _ = netip.ParseAddr(get(n, "gateway", ""))
			a := strings.Fields(get(n, "ipaddr", ""))
			if len(a) > 0 {
				addr = parseAddrOrPrefix(a[0])
			}
		} else {
			gw, _ = netip.ParseAddr(get(n, "ip6gw", ""))
			a := strings.Fields(get(n, "ip6addr", ""))
			if len(a) > 0 {
				addr = parseAddrOrPrefix(a[0])
			}
		}
		if !gw.IsValid() {
			*notes = append(*notes, Note{npos, fmt.Sprintf("interface %s: static without a gateway: the link gets a device route", s.Name)})
		}
	} else if proto == "dhcp" || proto == "dhcpv6" {
		*notes = append(*notes, Note{npos, fmt.Sprintf("interface %s: proto %s: the gateway comes from DHCP; multihome does not learn gateways: set gateway%s", s.Name, proto, fam[3:])})
	}
	return dev, gw, addr
}

func parseAddrOrPrefix(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// track maps the interface's tracking settings to probes and health. It
// is long because it is a flat table: one short block per mwan3 option,
// in the order docs/import.md lists them.
func (m *mwan3) track(s *uci.Section, l *link, fam string) {
	n := &l.notes
	method := get(s, "track_method", "ping")
	typ := "icmp"
	switch method {
	case "ping", "nping-icmp":
	case "httping":
		typ = "http"
		if on(s, "httping_ssl") {
			typ = "https"
		}
	case "nping-tcp":
		typ = "tcp"
	case "arping", "nping-udp", "nping-arp":
		m.note(n, line(s, "track_method"), "interface %s: track_method %s: no equivalent, probed by ICMP echo", s.Name, method)
	default:
		m.note(n, line(s, "track_method"), "interface %s: unknown track_method %q: probed by ICMP echo", s.Name, method)
	}
	targets := s.List("track_ip")
	for _, t := range targets {
		a, err := netip.ParseAddr(t)
		switch {
		case err != nil && typ != "http" && typ != "https":
			m.note(n, line(s, "track_ip"), "interface %s: track_ip %q is not an IP address: not imported", s.Name, t)
			continue
		case err == nil && (a.Is4() != (fam == "ipv4")):
			m.note(n, line(s, "track_ip"), "interface %s: track_ip %s is not %s (the interface's family): not imported", s.Name, t, fam)
			continue
		}
		target := t
		if typ == "tcp" {
			target = netip.AddrPortFrom(a, 80).String()
		}
		l.probes = append(l.probes, probe{typ, target})
	}
	if len(targets) == 0 {
		m.note(n, s.Line, "interface %s: no track_ip: mwan3 does not track it (always online); multihome probes the gateway", s.Name)
	}
	if l.health != (health{}) { // second family of a merged link: keep the first one's health
		m.note(n, s.Line, "interface %s: merged into link %s; its tracking settings (interval, down, up, ...) are %s's", s.Name, l.name, l.v4name)
		return
	}
	h := &l.health
	secs := func(name string, def time.Duration) time.Duration {
		if _, ok := s.Get(name); !ok {
			return def
		}
		return time.Duration(m.num(s, name, int(def/time.Second), n)) * time.Second
	}
	h.interval = secs("interval", mwanInterval)
	h.timeout = secs("timeout", mwanTimeout)
	if 2*h.interval > 10*time.Second {
		h.window = 2 * h.interval
	}
	h.minUp = m.num(s, "reliability", 1, n)
	if h.minUp > len(l.probes) && len(l.probes) > 0 {
		m.note(n, line(s, "reliability"), "interface %s: reliability %d is more than its %d targets: using %d", s.Name, h.minUp, len(l.probes), len(l.probes))
		h.minUp = len(l.probes)
	}
	if h.minUp == 1 {
		h.minUp = 0 // multihome's default
	}
	h.down = m.num(s, "down", mwanDown, n)
	h.up = m.num(s, "up", mwanUp, n)
	if on(s, "check_quality") {
		h.degRTT = time.Duration(m.num(s, "failure_latency", int(mwanFailLatency/time.Millisecond), n)) * time.Millisecond
		h.recRTT = time.Duration(m.num(s, "recovery_latency", int(mwanRecLatency/time.Millisecond), n)) * time.Millisecond
		h.degLoss = float64(m.num(s, "failure_loss", mwanFailLoss, n)) / 100
		h.recLoss = float64(m.num(s, "recovery_loss", mwanRecLoss, n)) / 100
		m.note(n, line(s, "check_quality"), "interface %s: check_quality: mwan3 counts a round over failure_latency/failure_loss as failed;\n"+
			"multihome marks the link degraded instead (policies avoid it while another link is fully up)", s.Name)
	} else {
		for _, o := range []string{"failure_latency", "recovery_latency", "failure_loss", "recovery_loss"} {
			if _, ok := s.Get(o); ok {
				m.note(n, line(s, o), "interface %s: %s without check_quality '1': unused by mwan3, not imported", s.Name, o)
			}
		}
	}
	if c := m.num(s, "count", 1, n); c != 1 {
		m.note(n, line(s, "count"), "interface %s: count %d: multihome sends one probe per target per interval", s.Name, c)
	}
	for _, o := range []string{"size", "max_ttl", "failure_interval", "recovery_interval", "keep_failure_interval", "initial_state"} {
		if v, ok := s.Get(o); ok {
			m.note(n, line(s, o), "interface %s: %s %q: no equivalent, not imported", s.Name, o, v)
		}
	}
	if fc := s.List("flush_conntrack"); len(fc) > 0 {
		m.note(n, line(s, "flush_conntrack"), "interface %s: flush_conntrack %s: multihome flushes exactly a failed link's flows (outbound.flush_on_failure)", s.Name, strings.Join(fc, " "))
	}
}

// memberships reads members and policies.
func (m *mwan3) memberships() {
	type mem struct {
		link           *link
		iface          string
		metric, weight int
		line           int
	}
	mems := map[string]*mem{}
	for _, s := range m.f.Of("member") {
		var n []Note
		x := &mem{iface: get(s, "interface", ""), metric: m.num(s, "metric", 1, &n), weight: m.num(s, "weight", 1, &n), line: s.Line}
		m.d.droppedPolicies = append(m.d.droppedPolicies, n...)
		l, known := m.byIface[x.iface]
		switch {
		case !known:
			m.note(&m.d.droppedPolicies, line(s, "interface"), "member %s: unknown interface %q: not imported", s.Name, x.iface)
		case l != nil:
			x.link = l
		}
		mems[s.Name] = x
	}
	for _, s := range m.f.Of("policy") {
		p := &policy{name: policyName(s.Name, m.polNames), source: fmt.Sprintf("%s policy %s", m.pos(s.Line), s.Name)}
		var ms []member
		for _, name := range s.List("use_member") {
			x, ok := mems[name]
			if !ok {
				m.note(&p.notes, line(s, "use_member"), "policy %s: unknown member %q: not imported", s.Name, name)
				continue
			}
			if x.link == nil {
				continue // its interface is not imported (noted there)
			}
			dup := slices.IndexFunc(ms, func(o member) bool { return o.link == x.link })
			if dup >= 0 {
				if ms[dup].tier != x.metric || ms[dup].weight != x.weight {
					m.note(&p.notes, line(s, "use_member"), "policy %s: member %s (metric %d, weight %d) and %s (metric %d, weight %d) are one link %s: using the first",
						s.Name, name, x.metric, x.weight, ms[dup].name, ms[dup].tier, ms[dup].weight, x.link.name)
				}
				continue
			}
			ms = append(ms, member{x.link, x.metric, x.weight, name})
			p.links = append(p.links, x.link.name)
		}
		switch lr := get(s, "last_resort", "unreachable"); lr {
		case "unreachable":
			p.lastResort = "unreachable"
		case "default":
			p.lastResort = "main"
		case "blackhole":
			p.lastResort = "unreachable"
			m.note(&p.notes, line(s, "last_resort"), "policy %s: last_resort blackhole: multihome refuses with ICMP unreachable instead of dropping silently", s.Name)
		default:
			p.lastResort = "unreachable"
			m.note(&p.notes, line(s, "last_resort"), "policy %s: unknown last_resort %q: using unreachable, mwan3's default", s.Name, lr)
		}
		if len(ms) == 0 {
			m.note(&m.d.droppedPolicies, s.Line, "policy %s: no member on an imported interface: not imported", s.Name)
			m.policies[s.Name] = nil
			continue
		}
		m.policies[s.Name] = p
		m.members[s.Name] = ms
		m.d.policies = append(m.d.policies, p)
	}
}
