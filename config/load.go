package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a config file, with where it is.
type Error struct {
	File   string
	Line   int
	Column int
	// Field is the path of the offending field, e.g. "links[1].gateway4".
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a config. name is used in error messages.
// The returned error, if any, is of type Errors.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "empty config: at least one link is needed"}}
		}
		return nil, Errors{syntaxError(name, err)}
	}
	c := &Config{File: name}
	d := &decoder{pos: map[string]Pos{}}
	d.decode(&root, reflect.ValueOf(c).Elem(), "")
	c.pos = d.pos
	k := &checker{c: c}
	for _, e := range d.errs {
		k.errs = append(k.errs, &Error{File: name, Line: e.pos.Line, Column: e.pos.Column, Field: e.field, Msg: e.msg})
		k.undecoded = append(k.undecoded, e.field)
	}
	resolveFiles(c)
	checkLinks(c, k)
	for _, check := range sectionChecks {
		check(c, k)
	}
	if len(k.errs) > 0 {
		sort.SliceStable(k.errs, func(i, j int) bool {
			a, b := k.errs[i], k.errs[j]
			if a.Line != b.Line {
				return a.Line < b.Line
			}
			return a.Column < b.Column
		})
		return nil, k.errs
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(name string, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Column: 1, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// checker collects validation errors with their positions.
type checker struct {
	c    *Config
	errs Errors
	// undecoded are the fields that could not be decoded: checks of them,
	// their parents or children would only repeat the problem.
	undecoded []string
}

// errorf records a problem with the field at path. The position is where
// that field was written, or where its nearest written parent was.
func (k *checker) errorf(path, format string, a ...any) {
	for _, u := range k.undecoded {
		// A field that is "missing" is often one misspelt or mistyped
		// in the same object: report only that.
		if related(u, path) || strings.HasPrefix(format, "missing") && related(parent(path), u) {
			return
		}
	}
	p := k.c.Position(path)
	k.errs = append(k.errs, &Error{File: k.c.File, Line: p.Line, Column: p.Column, Field: path, Msg: fmt.Sprintf(format, a...)})
}

// sectionChecks fill in defaults and validate the subsystem sections. Each
// section's file appends its check in an init function. They run after
// the links are checked and defaulted, in registration order.
var sectionChecks []func(c *Config, k *checker)

// Position returns where the field at path (or its nearest parent) was
// written; the zero Pos if nowhere.
func (c *Config) Position(path string) Pos {
	for p := path; p != ""; p = parent(p) {
		if pos, ok := c.pos[p]; ok {
			return pos
		}
	}
	return Pos{}
}

// Has reports whether the field at path was written in the file.
func (c *Config) Has(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// related reports whether one path is the other or contains it.
func related(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == "" || a == b || strings.HasPrefix(b, a+".") || strings.HasPrefix(b, a+"[")
}

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// LinkByName returns the link called name, or nil.
func (c *Config) LinkByName(name string) *Link {
	for i := range c.Links {
		if c.Links[i].Name == name {
			return &c.Links[i]
		}
	}
	return nil
}

// LinkIndex returns the position of the link called name in Links, or -1.
func (c *Config) LinkIndex(name string) int {
	return slices.IndexFunc(c.Links, func(l Link) bool { return l.Name == name })
}

// Built-in health defaults, documented in docs/config.md.
var builtinHealth = Health{
	Interval:     Duration(200 * time.Millisecond),
	TimeoutFloor: Duration(100 * time.Millisecond),
	MaxTimeout:   Duration(time.Second),
	MinTargetsUp: 1,
	DownAfter:    3,
	UpAfter:      5,
	HoldDown:     Duration(2 * time.Second),
	Window:       Duration(10 * time.Second),
	Degraded:     Quality{Loss: 0.10},
	Recovered:    Quality{Loss: 0.05},
	Saturation: Saturation{
		Sample:    Duration(250 * time.Millisecond),
		Threshold: 0.90,
		Clear:     0.75,
		After:     Duration(2 * time.Second),
	},
}

// fillZero copies every zero field of dst from src, recursively through
// structs.
func fillZero(dst, src reflect.Value) {
	for i := range dst.NumField() {
		d, s := dst.Field(i), src.Field(i)
		if d.Kind() == reflect.Struct {
			fillZero(d, s)
			continue
		}
		if d.IsZero() {
			d.Set(s)
		}
	}
}

var linkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

// checkLinks fills in the log and links sections' defaults and validates
// them.
func checkLinks(c *Config, k *checker) {
	checkLog(c, k)
	if len(c.Links) == 0 {
		k.errorf("links", "at least one link is needed")
		return
	}
	checkHealth(k, "defaults.health", &c.Defaults.Health, false)
	names, ifaces := map[string]int{}, map[string]int{}
	for i := range c.Links {
		checkLink(c, k, i, names, ifaces)
	}
}

// checkLog fills in the log section's defaults and validates it.
func checkLog(c *Config, k *checker) {
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		k.errorf("log.level", "unknown level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		k.errorf("log.format", "unknown format %q: want text or json", c.Log.Format)
	}
}

// checkLink fills in links[i]'s defaults (weight, priority, a gateway
// probe, health) and validates it; names and ifaces map the names and
// interfaces seen so far to their index.
func checkLink(c *Config, k *checker, i int, names, ifaces map[string]int) {
	l := &c.Links[i]
	p := fmt.Sprintf("links[%d]", i)
	switch {
	case l.Name == "":
		k.errorf(p+".name", "missing: every link needs a name")
	case !linkName.MatchString(l.Name):
		k.errorf(p+".name", "bad name %q: use letters, digits, '-', '_' or '.', at most 32", l.Name)
	default:
		if j, dup := names[l.Name]; dup {
			k.errorf(p+".name", "duplicate link name %q (also links[%d])", l.Name, j)
		}
		names[l.Name] = i
	}
	switch {
	case l.Interface == "":
		k.errorf(p+".interface", "missing: every link needs its kernel interface")
	case len(l.Interface) > 15 || strings.ContainsAny(l.Interface, "/ \t"):
		k.errorf(p+".interface", "bad interface name %q", l.Interface)
	default:
		if j, dup := ifaces[l.Interface]; dup {
			k.errorf(p+".interface", "interface %q already used by links[%d]", l.Interface, j)
		}
		ifaces[l.Interface] = i
	}
	checkFamily(k, p+".gateway4", l.Gateway4, 4)
	checkFamily(k, p+".gateway6", l.Gateway6, 6)
	checkFamily(k, p+".address4", l.Address4, 4)
	checkFamily(k, p+".address6", l.Address6, 6)
	if l.Weight < 0 {
		k.errorf(p+".weight", "must not be negative, got %d", l.Weight)
	} else if l.Weight == 0 && !c.Has(p+".weight") {
		l.Weight = 1
	}
	if l.Priority < 0 {
		k.errorf(p+".priority", "must not be negative, got %d", l.Priority)
	} else if l.Priority == 0 {
		l.Priority = 1
	}
	if len(l.Probes) == 0 {
		switch {
		case l.Gateway4.IsValid():
			l.Probes = []Probe{{Type: ProbeICMP, Target: l.Gateway4.String()}}
		case l.Gateway6.IsValid():
			l.Probes = []Probe{{Type: ProbeICMP, Target: l.Gateway6.String()}}
		default:
			k.errorf(p+".probes", "missing: give probe targets, or a gateway4/gateway6 to probe")
		}
	}
	for j := range l.Probes {
		checkProbe(k, fmt.Sprintf("%s.probes[%d]", p, j), &l.Probes[j])
	}
	checkHealth(k, p+".health", &l.Health, false)
	fillZero(reflect.ValueOf(&l.Health).Elem(), reflect.ValueOf(c.Defaults.Health))
	fillZero(reflect.ValueOf(&l.Health).Elem(), reflect.ValueOf(builtinHealth))
	checkHealth(k, p+".health", &l.Health, true)
	if n := len(l.Probes); n > 0 && l.Health.MinTargetsUp > n {
		k.errorf(p+".health.min_targets_up", "quorum %d is more than the link's %d probe targets", l.Health.MinTargetsUp, n)
	}
}

func checkFamily(k *checker, path string, a netip.Addr, fam int) {
	if !a.IsValid() {
		return
	}
	if fam == 4 && !a.Is4() {
		k.errorf(path, "%s is not an IPv4 address", a)
	}
	if fam == 6 && (!a.Is6() || a.Is4In6()) {
		k.errorf(path, "%s is not an IPv6 address", a)
	}
}

func checkProbe(k *checker, p string, pr *Probe) {
	if pr.Type == "" {
		pr.Type = ProbeICMP
	}
	if pr.Target == "" {
		k.errorf(p+".target", "missing: the address to probe")
		return
	}
	switch pr.Type {
	case ProbeICMP, ProbeDNS:
		if _, err := netip.ParseAddr(pr.Target); err != nil {
			k.errorf(p+".target", "%q is not an IP address", pr.Target)
		}
		if pr.Type == ProbeDNS && pr.Query == "" {
			pr.Query = "."
		}
	case ProbeTCP:
		t := pr.Target
		if _, err := netip.ParseAddr(t); err == nil {
			t = net.JoinHostPort(t, "80")
		}
		ap, err := netip.ParseAddrPort(t)
		if err != nil || ap.Port() == 0 {
			k.errorf(p+".target", "%q is not IP:port (e.g. 203.0.113.10:443)", pr.Target)
			return
		}
		pr.Target = ap.String()
	case ProbeHTTP, ProbeHTTPS:
		if strings.Contains(pr.Target, "/") {
			k.errorf(p+".target", "%q: give the host or IP only; the path goes in path", pr.Target)
		}
		if pr.Path == "" {
			pr.Path = "/"
		} else if !strings.HasPrefix(pr.Path, "/") {
			k.errorf(p+".path", "%q must start with /", pr.Path)
		}
		if pr.ExpectStatus == 0 {
			pr.ExpectStatus = 200
		} else if pr.ExpectStatus < 100 || pr.ExpectStatus > 599 {
			k.errorf(p+".expect_status", "%d is not an HTTP status", pr.ExpectStatus)
		}
	default:
		k.errorf(p+".type", "unknown probe type %q: want icmp, tcp, http, https or dns", pr.Type)
	}
}

// checkHealth validates one Health block. With full set, every field is
// filled and relations between fields are checked too.
func checkHealth(k *checker, p string, h *Health, full bool) {
	if !full {
		for _, f := range []struct {
			name string
			v    int
		}{{"min_targets_up", h.MinTargetsUp}, {"down_after", h.DownAfter}, {"up_after", h.UpAfter}} {
			if f.v < 0 {
				k.errorf(p+"."+f.name, "must be at least 1, got %d", f.v)
			}
		}
		if h.Interval != 0 && h.Interval.D() < 10*time.Millisecond {
			k.errorf(p+".interval", "%s is too short: at least 10ms", h.Interval.D())
		}
		if h.Saturation.Sample != 0 && h.Saturation.Sample.D() < 10*time.Millisecond {
			k.errorf(p+".saturation.sample", "%s is too short: at least 10ms", h.Saturation.Sample.D())
		}
		return
	}
	if h.MaxTimeout < h.TimeoutFloor {
		k.errorf(p+".max_timeout", "%s is below timeout_floor %s", h.MaxTimeout.D(), h.TimeoutFloor.D())
	}
	if h.Window.D() < 2*h.Interval.D() {
		k.errorf(p+".window", "%s must be at least two probe intervals (%s)", h.Window.D(), 2*h.Interval.D())
	}
	if h.Degraded.Loss > 0 && h.Recovered.Loss > h.Degraded.Loss {
		k.errorf(p+".recovered.loss", "%.3g%% is above degraded.loss %.3g%%: the link could never recover", float64(h.Recovered.Loss)*100, float64(h.Degraded.Loss)*100)
	}
	if h.Degraded.RTT > 0 && h.Recovered.RTT > h.Degraded.RTT {
		k.errorf(p+".recovered.rtt", "%s is above degraded.rtt %s", h.Recovered.RTT.D(), h.Degraded.RTT.D())
	}
	if h.Degraded.RTT > 0 && h.Recovered.RTT == 0 {
		h.Recovered.RTT = h.Degraded.RTT * 8 / 10
	}
	if h.Degraded.Jitter > 0 && h.Recovered.Jitter > h.Degraded.Jitter {
		k.errorf(p+".recovered.jitter", "%s is above degraded.jitter %s", h.Recovered.Jitter.D(), h.Degraded.Jitter.D())
	}
	if h.Degraded.Jitter > 0 && h.Recovered.Jitter == 0 {
		h.Recovered.Jitter = h.Degraded.Jitter * 8 / 10
	}
	if h.Saturation.Clear > h.Saturation.Threshold {
		k.errorf(p+".saturation.clear", "%.3g%% is above saturation.threshold %.3g%%", float64(h.Saturation.Clear)*100, float64(h.Saturation.Threshold)*100)
	}
}
