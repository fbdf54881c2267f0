package config

import (
	"net/netip"
	"time"
)

// Config is the whole multihome configuration, one YAML file.
type Config struct {
	// Log controls the daemon's structured logs.
	Log Log `yaml:"log"`
	// Defaults holds health settings applied to every link that does not
	// override them.
	Defaults Defaults `yaml:"defaults"`
	// Links are the uplinks multihome monitors and steers over.
	Links []Link `yaml:"links"`
	// Subsystem sections. Each subsystem owns its own file in this package
	// (outbound.go, dns.go, ...) with its types, defaults and validation.
	// SECTIONS (keep one field per line; subsystems add theirs here)
	DNS      *DNS      `yaml:"dns"`
	Outbound Outbound  `yaml:"outbound"`
	API      API       `yaml:"api"`
	IPv6     *IPv6     `yaml:"ipv6"`
	Topology *Topology `yaml:"topology"`
	BGP      *BGP      `yaml:"bgp"`
	HA       *HA       `yaml:"ha"`
	MPTCP    *MPTCP    `yaml:"mptcp"`
	Bond     *Bond     `yaml:"bond"`

	// File is the path the config was read from ("" for in-memory input).
	File string `yaml:"-"`
	// pos maps a field path such as "links[1].gateway4" to where it was
	// written, for error messages.
	pos map[string]Pos
	// secrets are the secret files named (resolveFiles).
	secrets []SecretFile
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error (default info)
	Format string `yaml:"format"` // text or json (default text)
}

// Defaults are applied to links that leave a setting unset.
type Defaults struct {
	Health Health `yaml:"health"`
	// Resolvers are used by every link that has none of its own
	// (config/resolvers.go).
	Resolvers []Resolver `yaml:"resolvers"`
}

// Link is one uplink.
type Link struct {
	// Name identifies the link everywhere (logs, API, policies).
	Name string `yaml:"name"`
	// Interface is the kernel interface of the uplink, e.g. "wan1".
	Interface string `yaml:"interface"`
	// Gateway4 and Gateway6 are the next hops on this link.
	Gateway4 netip.Addr `yaml:"gateway4"`
	Gateway6 netip.Addr `yaml:"gateway6"`
	// Address4 and Address6 are this site's addresses on the link; when
	// unset they are learned from the interface.
	Address4 netip.Addr `yaml:"address4"`
	Address6 netip.Addr `yaml:"address6"`
	// Weight is the link's share in weighted policies (default 1).
	Weight int `yaml:"weight"`
	// Priority is the failover tier: lower is preferred (default 1).
	Priority int `yaml:"priority"`
	// Capacity is the link's bandwidth in each direction, used to compute
	// utilisation and spare capacity.
	Capacity Capacity `yaml:"capacity"`
	// Probes are the targets that prove the link works, probed through it.
	Probes []Probe `yaml:"probes"`
	// Health overrides Defaults.Health field by field.
	Health Health `yaml:"health"`
	// Resolvers resolve the link's host-name probe targets, queried
	// through the link (default: Defaults.Resolvers; config/resolvers.go).
	Resolvers []Resolver `yaml:"resolvers"`
	// BFD runs a BFD session to the link's next hop (config/bfd.go).
	BFD *LinkBFD `yaml:"bfd"`
	// SNAT overrides outbound.snat for this link: false leaves the
	// source of flows leaving it untouched (a transit link to an HA
	// partner, whose uplink translates them: config/transit.go).
	SNAT *bool `yaml:"snat"`
}

// Capacity is a link's bandwidth.
type Capacity struct {
	Down Rate `yaml:"down"`
	Up   Rate `yaml:"up"`
}

// ProbeType names a prober.
type ProbeType string

// Probe types.
const (
	ProbeICMP  ProbeType = "icmp"
	ProbeTCP   ProbeType = "tcp"
	ProbeHTTP  ProbeType = "http"
	ProbeHTTPS ProbeType = "https"
	ProbeDNS   ProbeType = "dns"
)

// Probe is one target probed through its link.
type Probe struct {
	// Type is icmp, tcp, http, https or dns (default icmp).
	Type ProbeType `yaml:"type"`
	// Target is the address probed: an IP for icmp and dns, IP:port for
	// tcp (port defaults to 80), host or IP for http(s).
	Target string `yaml:"target"`
	// Path, Host and ExpectStatus are for http(s): GET Path with Host
	// header Host; the probe succeeds on ExpectStatus (default 200).
	Path         string `yaml:"path"`
	Host         string `yaml:"host"`
	ExpectStatus int    `yaml:"expect_status"`
	// Query is the name asked by dns probes (default ".", type NS... see
	// docs); any answer with RCODE NOERROR or NXDOMAIN proves the path.
	Query string `yaml:"query"`
}

// Health holds a link's probing and state-machine settings. Zero values
// mean "inherit": from Defaults.Health, then from built-in defaults.
type Health struct {
	// Interval between two probes of one target (default 200ms).
	Interval Duration `yaml:"interval"`
	// Timeout for one probe. Default: derived from measured RTT
	// (4 × RTT p95, at least TimeoutFloor, at most MaxTimeout).
	Timeout      Duration `yaml:"timeout"`
	TimeoutFloor Duration `yaml:"timeout_floor"` // default 100ms
	MaxTimeout   Duration `yaml:"max_timeout"`   // default 1s
	// MinTargetsUp is the quorum: how many targets must answer in a round
	// for the round to count as a success (default 1).
	MinTargetsUp int `yaml:"min_targets_up"`
	// DownAfter consecutive failed rounds mark the link down (default 3).
	DownAfter int `yaml:"down_after"`
	// UpAfter consecutive successful rounds mark it up again (default 5).
	UpAfter int `yaml:"up_after"`
	// HoldDown is how long a recovered link stays out of use before
	// failback (default 2s).
	HoldDown Duration `yaml:"hold_down"`
	// Window is the sliding window for loss and RTT percentiles
	// (default 10s).
	Window Duration `yaml:"window"`
	// Degraded thresholds: crossing any marks the link degraded.
	Degraded Quality `yaml:"degraded"`
	// Recovered thresholds: all must hold to leave degraded (hysteresis).
	Recovered Quality `yaml:"recovered"`
	// Saturation detection from interface counters.
	Saturation Saturation `yaml:"saturation"`
}

// Quality is a set of link-quality thresholds.
type Quality struct {
	Loss   Percent  `yaml:"loss"`
	RTT    Duration `yaml:"rtt"`
	Jitter Duration `yaml:"jitter"`
}

// Saturation configures utilisation sampling and the saturated state.
type Saturation struct {
	// Sample is the counter sampling period (default 250ms).
	Sample Duration `yaml:"sample"`
	// Threshold utilisation (either direction) that counts as saturated
	// (default 90%).
	Threshold Percent `yaml:"threshold"`
	// Clear is the utilisation under which saturation ends (default 75%).
	Clear Percent `yaml:"clear"`
	// After is how long utilisation must stay over Threshold (default 2s).
	After Duration `yaml:"after"`
}

// Pos is a position in the config file.
type Pos struct {
	Line, Column int
}

// Duration is a time.Duration written as "200ms", "2s", "1m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Rate is a bandwidth in bits per second, written as "100Mbit", "1.5Gbit",
// "800kbit" or a plain number of bit/s.
type Rate uint64

// Percent is a fraction in [0,1], written as "10%" or "0.1".
type Percent float64
