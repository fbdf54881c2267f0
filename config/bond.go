package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bond configures the gateway's side of bonding: the transparent proxy
// that carries the TCP flows of `bond` policies over MPTCP to an
// aggregator. It needs the mptcp section (the endpoints give the proxy's
// connections one subflow per healthy link). docs/mptcp.md.
type Bond struct {
	// Aggregator is the aggregator's address and port.
	Aggregator netip.AddrPort `yaml:"aggregator"`
	// Key is the pre-shared key (at least 16 bytes), or KeyFile a file
	// holding it (relative to the config file).
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	// Port is where the proxy listens for redirected connections, on
	// every address of the gateway (default 7401).
	Port int `yaml:"port"`
	// MaxConns bounds the connections relayed at once (default 4096).
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes a connection quiet in both directions (default
	// 10m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DialTimeout bounds a connection to the aggregator and its answer
	// (default 3s).
	DialTimeout Duration `yaml:"dial_timeout"`
	// CheckInterval is how often the aggregator is checked (default 1s).
	CheckInterval Duration `yaml:"check_interval"`
}

// Bond defaults.
const (
	DefaultBondPort          = 7401
	DefaultAggregatePort     = 7400
	DefaultBondMaxConns      = 4096
	DefaultBondIdleTimeout   = 10 * time.Minute
	DefaultBondDialTimeout   = 3 * time.Second
	DefaultBondCheckInterval = time.Second
	MinBondKeyLen            = 16
)

func init() { sectionChecks = append(sectionChecks, checkBond) }

// checkBond validates the bond section and the bond policies.
func checkBond(c *Config, k *checker) {
	// Runs before checkOutbound (init order): read the defaults from
	// EffectiveOutbound, write the fallback into the policy itself.
	eo := c.EffectiveOutbound()
	o := &c.Outbound
	bonded := false
	for i := range o.Policies {
		p := &o.Policies[i]
		path := fmt.Sprintf("outbound.policies[%d]", i)
		if p.Type != PolicyBond {
			if p.Fallback != "" {
				k.errorf(path+".fallback", "only for type bond")
			}
			continue
		}
		bonded = true
		if p.Fallback == "" {
			p.Fallback = eo.DefaultPolicy
		}
		switch j := policyIndex(o, p.Fallback); {
		case j < 0:
			k.errorf(path+".fallback", "unknown policy %q", p.Fallback)
		case o.Policies[j].Type == PolicyBond:
			k.errorf(path+".fallback", "policy %q is a bond policy: the fallback must steer by link (give fallback: with a failover, weighted, sticky or least-loaded policy)", p.Fallback)
		}
		if p.Name == eo.DefaultPolicy {
			k.errorf(path+".type", "the default policy cannot be a bond policy: bond the flows of rules, and give them a fallback")
		}
	}
	if bonded && c.Bond == nil {
		k.errorf("outbound.policies", "a bond policy needs the bond section (the aggregator and its key)")
	}
	if bonded && c.MPTCP == nil {
		k.errorf("outbound.policies", "a bond policy needs the mptcp section (one subflow per link comes from its endpoints)")
	}
	if bonded && MarkSlots(eo.MarkMask)-2 <= len(c.Links) {
		k.errorf("outbound.mark_mask", "no room for the bond mark: %d links need %d values in the mask", len(c.Links), len(c.Links)+2)
	}
	b := c.Bond
	if b == nil {
		return
	}
	if !b.Aggregator.IsValid() || b.Aggregator.Port() == 0 || b.Aggregator.Addr().IsUnspecified() {
		k.errorf("bond.aggregator", "missing: the aggregator's address and port, e.g. 203.0.113.80:%d", DefaultAggregatePort)
	}
	checkKey(k, "bond", b.Key, b.KeyFile, c.File)
	defInt(&b.Port, DefaultBondPort)
	if b.Port < 1 || b.Port > 65535 {
		k.errorf("bond.port", "must be 1..65535, got %d", b.Port)
	}
	defInt(&b.MaxConns, DefaultBondMaxConns)
	if b.MaxConns < 1 {
		k.errorf("bond.max_conns", "must be at least 1, got %d", b.MaxConns)
	}
	defDur(&b.IdleTimeout, DefaultBondIdleTimeout)
	defDur(&b.DialTimeout, DefaultBondDialTimeout)
	defDur(&b.CheckInterval, DefaultBondCheckInterval)
	for _, d := range []struct {
		name string
		v    Duration
	}{{"idle_timeout", b.IdleTimeout}, {"dial_timeout", b.DialTimeout}, {"check_interval", b.CheckInterval}} {
		if d.v.D() < 100*time.Millisecond {
			k.errorf("bond."+d.name, "must be at least 100ms, got %v", d.v.D())
		}
	}
}

func policyIndex(o *Outbound, name string) int {
	for i, p := range o.Policies {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func defInt(v *int, def int) {
	if *v == 0 {
		*v = def
	}
}

// checkKey checks a pre-shared key given inline or by file.
func checkKey(k *checker, section, key, file, configFile string) {
	switch {
	case key != "" && file != "":
		k.errorf(section+".key_file", "give key or key_file, not both")
	case key == "" && file == "":
		k.errorf(section+".key", "missing: give the pre-shared key (key_file: a file holding at least %d random bytes)", MinBondKeyLen)
	case file != "":
		if _, err := ReadKey(configFile, file); err != nil {
			k.errorf(section+".key_file", "%v", err)
		}
	case len(key) < MinBondKeyLen:
		k.errorf(section+".key", "too short: at least %d bytes", MinBondKeyLen)
	}
}

// ReadKey reads a pre-shared key file (relative to the config file's
// directory), without its trailing newline.
func ReadKey(configFile, file string) ([]byte, error) {
	if !filepath.IsAbs(file) && configFile != "" {
		file = filepath.Join(filepath.Dir(configFile), file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < MinBondKeyLen {
		return nil, fmt.Errorf("%s: key too short: at least %d bytes", file, MinBondKeyLen)
	}
	return b, nil
}

// BondKey returns the bond section's key.
func (c *Config) BondKey() ([]byte, error) {
	if c.Bond.KeyFile != "" {
		return ReadKey(c.File, c.Bond.KeyFile)
	}
	return []byte(c.Bond.Key), nil
}

// AggregateFile is the config of `multihome aggregate`: the server end of
// bonding, on a well-connected machine.
type AggregateFile struct {
	Log       Log       `yaml:"log"`
	Aggregate Aggregate `yaml:"aggregate"`
	File      string    `yaml:"-"`
}

// Aggregate configures the aggregator.
type Aggregate struct {
	// Listen is the MPTCP listen address (default "[::]:7400").
	Listen string `yaml:"listen"`
	// Key or KeyFile: the pre-shared key, as on the gateways.
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
	// MaxConns bounds the connections relayed at once (default 4096).
	MaxConns int `yaml:"max_conns"`
	// HeaderTimeout cuts a connection whose header is not complete in
	// time (default 5s).
	HeaderTimeout Duration `yaml:"header_timeout"`
	// DialTimeout bounds the connection to the destination (default 10s).
	DialTimeout Duration `yaml:"dial_timeout"`
	// IdleTimeout closes a connection quiet in both directions (default
	// 10m).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ReplayWindow is how far a header's clock may be from ours (default
	// 30s): keep the clocks in sync (NTP).
	ReplayWindow Duration `yaml:"replay_window"`
	// Metrics, if set, serves Prometheus metrics at http://METRICS/metrics.
	Metrics string `yaml:"metrics"`
	// Subflows raises the kernel's MPTCP subflow limit (ip mptcp limits)
	// to this at start, so that gateways' subflows are accepted: one per
	// gateway link (default 8; 0 leaves the limit alone).
	Subflows *int `yaml:"subflows"`
}

// LoadAggregate reads and validates an aggregator config file.
func LoadAggregate(path string) (*AggregateFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseAggregate(path, b)
}

// ParseAggregate decodes and validates an aggregator config, with the
// same strictness and error format as Parse.
func ParseAggregate(name string, data []byte) (*AggregateFile, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "empty config: the aggregate section is needed"}}
		}
		return nil, Errors{syntaxError(name, err)}
	}
	f := &AggregateFile{File: name}
	d := &decoder{pos: map[string]Pos{}}
	d.decode(&root, reflect.ValueOf(f).Elem(), "")
	k := &checker{c: &Config{File: name, pos: d.pos}}
	for _, e := range d.errs {
		k.errs = append(k.errs, &Error{File: name, Line: e.pos.Line, Column: e.pos.Column, Field: e.field, Msg: e.msg})
		k.undecoded = append(k.undecoded, e.field)
	}
	a := &f.Aggregate
	if a.Listen == "" {
		a.Listen = fmt.Sprintf("[::]:%d", DefaultAggregatePort)
	}
	if _, err := netip.ParseAddrPort(a.Listen); err != nil {
		k.errorf("aggregate.listen", "%q is not ADDRESS:PORT (e.g. [::]:%d): %v", a.Listen, DefaultAggregatePort, err)
	}
	checkKey(k, "aggregate", a.Key, a.KeyFile, name)
	defInt(&a.MaxConns, DefaultBondMaxConns)
	if a.MaxConns < 1 {
		k.errorf("aggregate.max_conns", "must be at least 1, got %d", a.MaxConns)
	}
	defDur(&a.HeaderTimeout, 5*time.Second)
	defDur(&a.DialTimeout, 10*time.Second)
	defDur(&a.IdleTimeout, DefaultBondIdleTimeout)
	defDur(&a.ReplayWindow, 30*time.Second)
	for _, dd := range []struct {
		name string
		v    Duration
	}{{"header_timeout", a.HeaderTimeout}, {"dial_timeout", a.DialTimeout}, {"idle_timeout", a.IdleTimeout}, {"replay_window", a.ReplayWindow}} {
		if dd.v.D() < 100*time.Millisecond {
			k.errorf("aggregate."+dd.name, "must be at least 100ms, got %v", dd.v.D())
		}
	}
	if a.Subflows == nil {
		n := MaxMPTCPLimit
		a.Subflows = &n
	}
	if *a.Subflows < 0 || *a.Subflows > MaxMPTCPLimit {
		k.errorf("aggregate.subflows", "must be 0..%d, got %d", MaxMPTCPLimit, *a.Subflows)
	}
	if a.Metrics != "" && !strings.Contains(a.Metrics, ":") {
		k.errorf("aggregate.metrics", "%q is not ADDRESS:PORT", a.Metrics)
	}
	if len(k.errs) > 0 {
		sort.SliceStable(k.errs, func(i, j int) bool { return k.errs[i].Line < k.errs[j].Line })
		return nil, k.errs
	}
	return f, nil
}

// AggregateKey returns the aggregator's key.
func (f *AggregateFile) AggregateKey() ([]byte, error) {
	if f.Aggregate.KeyFile != "" {
		return ReadKey(f.File, f.Aggregate.KeyFile)
	}
	return []byte(f.Aggregate.Key), nil
}
