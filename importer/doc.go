// Package importer converts the multi-WAN configuration of other tools
// (OpenWrt's mwan3 with /etc/config/network, pfSense and OPNsense gateway
// groups) into a multihome YAML config. Every setting without an
// equivalent is kept as a comment in the output and returned as a Note,
// never dropped silently. docs/import.md shows what maps to what.
package importer

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Note is a setting of the source that has no exact equivalent, or a
// decision the importer took that the user should check.
type Note struct {
	// Pos is where the setting is: "FILE:LINE" or "FILE".
	Pos string
	Msg string
}

func (n Note) String() string { return n.Pos + ": " + strings.ReplaceAll(n.Msg, "\n", "\n  ") }

// Result is one converted config.
type Result struct {
	// YAML is the multihome config, with the notes as comments.
	YAML []byte
	// Notes lists every unmapped setting and every guess, in output order.
	Notes []Note
}

// The document model: only what the importers produce, written by
// (*doc).yaml in a fixed order with comments where they belong.
type doc struct {
	title    []string // header comment lines
	notes    []Note   // notes on the whole config, written in the header
	links    []*link
	policies []*policy
	rules    []*rule
	// defaultPolicy is outbound.default_policy ("" to leave it out).
	defaultPolicy string
	// dropped are source items not imported at all (disabled
	// interfaces, policies without members): their notes are written
	// where they would have gone.
	droppedLinks, droppedPolicies []Note
}

type link struct {
	notes          []Note
	name, iface    string
	gw4, gw6       netip.Addr
	addr4, addr6   netip.Addr
	weight, prio   int
	probes         []probe
	health         health
	source         string // "mwan3:7 interface wan"
	family4, fam6  bool
	v4name, v6name string // source sections merged into this link
}

type probe struct{ typ, target string }

// health holds only what importers set; zero means unset.
type health struct {
	interval, timeout, window time.Duration
	minUp, down, up           int
	degLoss, recLoss          float64 // fractions
	degRTT, recRTT            time.Duration
}

type policy struct {
	notes      []Note
	source     string
	name, typ  string
	links      []string
	sticky     time.Duration
	lastResort string
	degraded   string
}

type rule struct {
	notes    []Note
	source   string
	name     string
	src, dst []netip.Prefix
	proto    string
	dport    string
	sport    string
	iif      string
	policy   string
	migrate  bool // migrate_on_recovery
	// commentOut writes the rule as a comment; dropped writes only its
	// source and notes (it has no policy to write).
	commentOut, dropped bool
}

// allNotes returns every note in the order the YAML shows them.
func (d *doc) allNotes() []Note {
	out := append([]Note(nil), d.notes...)
	out = append(out, d.droppedLinks...)
	for _, l := range d.links {
		out = append(out, l.notes...)
	}
	out = append(out, d.droppedPolicies...)
	for _, p := range d.policies {
		out = append(out, p.notes...)
	}
	for _, r := range d.rules {
		out = append(out, r.notes...)
	}
	return out
}

func (d *doc) result() *Result {
	return &Result{YAML: []byte(d.yaml()), Notes: d.allNotes()}
}

// yaml writes the config. It is one function because the YAML is written
// top to bottom in the order a reader meets it (header, links, policies,
// rules), each section with its notes in place. Values come from parsed, validated fields
// (names are sanitised, addresses are netip values), and every string
// that could be read as something else is quoted.
func (d *doc) yaml() string {
	var b strings.Builder
	for _, t := range d.title {
		b.WriteString(strings.TrimRight("# "+t, " ") + "\n")
	}
	if len(d.notes) > 0 {
		b.WriteString("#\n")
		writeNotes(&b, "", d.notes)
	}
	b.WriteString("\nlinks:\n")
	writeNotes(&b, "  ", d.droppedLinks)
	for _, l := range d.links {
		b.WriteString("  # from " + l.source + "\n")
		writeNotes(&b, "  ", l.notes)
		fmt.Fprintf(&b, "  - name: %s\n", str(l.name))
		fmt.Fprintf(&b, "    interface: %s\n", str(l.iface))
		for _, kv := range []struct {
			k string
			a netip.Addr
		}{{"gateway4", l.gw4}, {"gateway6", l.gw6}, {"address4", l.addr4}, {"address6", l.addr6}} {
			if kv.a.IsValid() {
				fmt.Fprintf(&b, "    %s: %s\n", kv.k, str(kv.a.String()))
			}
		}
		if l.weight != 0 {
			fmt.Fprintf(&b, "    weight: %d\n", l.weight)
		}
		if l.prio != 0 {
			fmt.Fprintf(&b, "    priority: %d\n", l.prio)
		}
		if len(l.probes) > 0 {
			b.WriteString("    probes:\n")
			for _, p := range l.probes {
				fmt.Fprintf(&b, "      - {type: %s, target: %s}\n", p.typ, str(p.target))
			}
		}
		l.health.write(&b, "    ")
	}
	var ob strings.Builder
	if len(d.policies) > 0 || len(d.droppedPolicies) > 0 {
		ob.WriteString("  policies:\n")
		writeNotes(&ob, "    ", d.droppedPolicies)
		for _, p := range d.policies {
			ob.WriteString("    # from " + p.source + "\n")
			writeNotes(&ob, "    ", p.notes)
			fmt.Fprintf(&ob, "    - name: %s\n", str(p.name))
			fmt.Fprintf(&ob, "      type: %s\n", p.typ)
			ls := make([]string, len(p.links))
			for i, l := range p.links {
				ls[i] = str(l)
			}
			fmt.Fprintf(&ob, "      links: [%s]\n", strings.Join(ls, ", "))
			if p.sticky != 0 {
				fmt.Fprintf(&ob, "      sticky_timeout: %s\n", dur(p.sticky))
			}
			if p.lastResort != "" {
				fmt.Fprintf(&ob, "      last_resort: %s\n", p.lastResort)
			}
			if p.degraded != "" {
				fmt.Fprintf(&ob, "      degraded: %s\n", p.degraded)
			}
		}
	}
	if d.defaultPolicy != "" {
		fmt.Fprintf(&ob, "  default_policy: %s\n", str(d.defaultPolicy))
	}
	if len(d.rules) > 0 {
		ob.WriteString("  rules:\n")
		for _, r := range d.rules {
			r.write(&ob)
		}
	}
	if ob.Len() > 0 {
		b.WriteString("\noutbound:\n")
		b.WriteString(ob.String())
	}
	return b.String()
}

func (h health) write(b *strings.Builder, ind string) {
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	if h.interval != 0 {
		add("interval: %s", dur(h.interval))
	}
	if h.timeout != 0 {
		add("timeout: %s", dur(h.timeout))
	}
	if h.window != 0 {
		add("window: %s", dur(h.window))
	}
	if h.minUp != 0 {
		add("min_targets_up: %d", h.minUp)
	}
	if h.down != 0 {
		add("down_after: %d", h.down)
	}
	if h.up != 0 {
		add("up_after: %d", h.up)
	}
	if q := quality(h.degLoss, h.degRTT); q != "" {
		add("degraded: {%s}", q)
	}
	if q := quality(h.recLoss, h.recRTT); q != "" {
		add("recovered: {%s}", q)
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString(ind + "health:\n")
	for _, l := range lines {
		b.WriteString(ind + "  " + l + "\n")
	}
}

func quality(loss float64, rtt time.Duration) string {
	var f []string
	if loss != 0 {
		f = append(f, "loss: "+strconv.FormatFloat(loss*100, 'f', -1, 64)+"%")
	}
	if rtt != 0 {
		f = append(f, "rtt: "+dur(rtt))
	}
	return strings.Join(f, ", ")
}

func (r *rule) write(b *strings.Builder) {
	b.WriteString("    # from " + r.source + "\n")
	writeNotes(b, "    ", r.notes)
	if r.dropped {
		return
	}
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	add("name: %s", str(r.name))
	for _, f := range []struct {
		k string
		p []netip.Prefix
	}{{"src", r.src}, {"dst", r.dst}} {
		if len(f.p) > 0 {
			s := make([]string, len(f.p))
			for i, p := range f.p {
				s[i] = str(p.String())
			}
			add("%s: [%s]", f.k, strings.Join(s, ", "))
		}
	}
	if r.proto != "" {
		add("proto: %s", r.proto)
	}
	if r.sport != "" {
		add("sport: %s", str(r.sport))
	}
	if r.dport != "" {
		add("dport: %s", str(r.dport))
	}
	if r.iif != "" {
		add("iif: %s", str(r.iif))
	}
	add("policy: %s", str(r.policy))
	if r.migrate {
		add("migrate_on_recovery: true")
	}
	for i, l := range lines {
		lead := "      "
		if i == 0 {
			lead = "    - "
		}
		if r.commentOut {
			lead = "    # " + lead[4:]
		}
		b.WriteString(lead + l + "\n")
	}
}

func writeNotes(b *strings.Builder, ind string, notes []Note) {
	for _, n := range notes {
		for i, l := range strings.Split(n.Msg, "\n") {
			if i == 0 {
				fmt.Fprintf(b, "%s# NOTE %s: %s\n", ind, n.Pos, l)
			} else {
				fmt.Fprintf(b, "%s#   %s\n", ind, l)
			}
		}
	}
}

var plain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_./-]*$|^[0-9]+(\.[0-9]+){3}(/[0-9]+)?$`)

// str writes s bare when YAML reads it back as the same string, quoted
// otherwise (JSON quoting is valid YAML).
func str(s string) string {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~":
		return strconv.Quote(s)
	}
	if plain.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// dur writes a duration the way people write them in the config: 500ms,
// 10s, 1m30s.
func dur(d time.Duration) string {
	switch {
	case d%time.Second != 0:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

var badName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// linkName makes a valid, unique link name from a source name.
func linkName(s string, taken map[string]bool) string {
	n := badName.ReplaceAllString(s, "_")
	if n == "" {
		n = "link"
	}
	if len(n) > 28 {
		n = n[:28]
	}
	return unique(n, taken)
}

// policyName makes a valid, unique policy name: a letter first, then
// letters, digits, '-' and '_', at most 24.
func policyName(s string, taken map[string]bool) string {
	n := regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(s, "_")
	if n == "" || !(n[0] >= 'a' && n[0] <= 'z' || n[0] >= 'A' && n[0] <= 'Z') {
		n = "p" + n
	}
	if len(n) > 20 {
		n = n[:20]
	}
	return unique(n, taken)
}

func unique(n string, taken map[string]bool) string {
	base := n
	for i := 2; taken[n]; i++ {
		n = fmt.Sprintf("%s%d", base, i)
	}
	taken[n] = true
	return n
}
