// Package audit finds single points of failure of a multihomed site: from
// the config and its optional topology section (a graph of devices,
// conduits, power feeds, providers and DNS servers, analysed for
// articulation points, minimum cuts and single failures), and from active
// per-link path discovery (a traceroute of its own, bound to each link,
// that finds routers several links cross). It renders reports as text,
// JSON, Graphviz DOT and SVG. docs/audit.md describes the checks.
package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/multihome/multihome/config"
)

// Severity ranks findings.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
)

var severityNames = []string{"info", "low", "medium", "high"}

func (s Severity) String() string {
	if s < Info || s > High {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// ParseSeverity reads "info", "low", "medium" or "high".
func ParseSeverity(s string) (Severity, error) {
	if i := slices.Index(severityNames, strings.ToLower(s)); i >= 0 {
		return Severity(i), nil
	}
	return Info, fmt.Errorf("unknown severity %q: want info, low, medium or high", s)
}

// Finding is one problem, with what to do about it.
type Finding struct {
	// Check is the stable identifier of the check (docs/audit.md).
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Summary says what is wrong, in one sentence.
	Summary string `json:"summary"`
	// Recommendation says how to fix it.
	Recommendation string `json:"recommendation"`
	// Elements are the graph nodes (or addresses) involved.
	Elements []string `json:"elements,omitempty"`
}

// Report is the result of an audit.
type Report struct {
	// Findings, most severe first.
	Findings []Finding `json:"findings"`
	// Graph is the site model the static checks ran on.
	Graph *Graph `json:"graph"`
	// SPOFs are the elements whose single failure cuts the LAN off the
	// Internet.
	SPOFs []string `json:"spofs"`
	// MinCut is the smallest set of graph nodes whose failure cuts the LAN
	// off the Internet (power and carrier dependencies aside).
	MinCut []string `json:"min_cut"`
	// ServiceCuts give, for each service (internet, authoritative-dns,
	// resolvers), a smallest set of at most two elements whose failure
	// stops it, power and upstream dependencies included; a service that
	// survives any two failures is absent.
	ServiceCuts map[string][]string `json:"service_cuts"`
	// Discovery holds the paths found by active discovery, if it ran.
	Discovery *Discovery `json:"discovery,omitempty"`
}

// Max returns the highest severity among the findings, and false if
// there are none.
func (r *Report) Max() (Severity, bool) {
	if len(r.Findings) == 0 {
		return Info, false
	}
	m := Info
	for _, f := range r.Findings {
		m = max(m, f.Severity)
	}
	return m, true
}

// AtLeast reports whether a finding of severity s or higher exists.
func (r *Report) AtLeast(s Severity) bool {
	m, ok := r.Max()
	return ok && m >= s
}

// Add appends findings and keeps them sorted, most severe first.
func (r *Report) Add(fs ...Finding) {
	r.Findings = append(r.Findings, fs...)
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		return cmp.Compare(a.Check, b.Check)
	})
}

// Static audits a loaded config (defaults applied by config.Parse) without
// sending anything.
func Static(c *config.Config) *Report { return StaticLive(c, Live{}) }

// Live is what a running daemon knows that the config does not.
type Live struct {
	// HAPartnerSeen tells whether the ha section's partner is alive (its
	// sync traffic arrives); nil when not known, as in a static audit,
	// where a configured partner is counted.
	HAPartnerSeen *bool
}

// StaticLive is Static with what the running daemon knows: an ha partner
// that is configured but not seen does not replace the gateway.
func StaticLive(c *config.Config, live Live) *Report {
	m := newModel(c)
	if c.HA != nil {
		if p := idDevice(c.HA.Partner); (live.HAPartnerSeen == nil || *live.HAPartnerSeen) && !slices.Contains(m.ha, p) {
			m.ha = append(m.ha, p)
		}
	}
	r := &Report{Graph: m.graph()}
	r.SPOFs, r.MinCut = m.spofs(r.Graph)
	r.ServiceCuts = m.serviceCuts(r.Graph)
	r.Findings = []Finding{}
	r.Add(configChecks(c)...)
	r.Add(m.topologyChecks()...)
	r.Add(dnsChecks(c, m)...)
	r.Add(haChecks(c, m, live)...)
	for i := range r.Graph.Nodes {
		if slices.Contains(r.SPOFs, r.Graph.Nodes[i].ID) {
			r.Graph.Nodes[i].SPOF = true
		}
	}
	return r
}
