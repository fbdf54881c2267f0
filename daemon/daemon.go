// Package daemon wires multihome's subsystems into one running process.
//
// Daemon is the only place that knows every subsystem: it builds them from
// one config, starts them, hands them the link monitor's events, reloads
// them together and stops them together. cmd/multihome is its only user.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/metrics"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/route"
)

// netlinkTimeout bounds each netlink request made without a handle of
// its own (the library's default is 60 s).
const netlinkTimeout = 10 * time.Second

// Options are the daemon's settings that do not come from the config file.
type Options struct {
	// Events, if set, receives every monitor event as one JSON object per
	// line (for scripts and tests; the API serves the same stream).
	Events io.Writer
	// LogLevel, if set, is the level of the daemon's logger: a reload
	// sets it from log.level.
	LogLevel *slog.LevelVar
	// Strict refuses a reloaded config that group or others can read, or
	// whose secret files they can (config.PermissionProblems).
	Strict bool
}

// logLevel parses log.level (debug, info, warn, error; default info).
func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
}

// subsystem is what the daemon needs from each part it runs.
type subsystem interface {
	Run(ctx context.Context) error
	Update(cfg *config.Config) error
}

// Daemon runs every configured subsystem.
type Daemon struct {
	log  *slog.Logger
	opts Options
	mon  *monitor.Monitor
	subs []*named
	reg  *prometheus.Registry
	api  *api.Server
	// routes writes every owner's ip rules and routes (routeOwner).
	routes *route.Manager

	mu  sync.Mutex // guards cfg and file; reloads are serialised by reloadMu
	cfg *config.Config
	// file is the config as loaded, cfg the one in force: file with the
	// prefixes learned by DHCPv6-PD filled in (withLearned).
	file *config.Config
	pd   *pdSub
	// addrs learns the addresses the config leaves unset; missing are the
	// uses of addresses not known (yet), as last reported.
	addrs   *addrSub
	missing []config.SelfNeed

	reloadMu sync.Mutex
	// roleMu serialises applying the HA role to the subsystems (ha.go);
	// haNext (guarded by mu) is the ha node a reload is adding.
	roleMu sync.Mutex
	haNext roleNode

	// Set by Run (guarded by mu): the context subsystems run under, the
	// cancel that stops them all, and the errors they failed with.
	runCtx  context.Context
	stopAll context.CancelFunc
	runErrs []error
	wg      sync.WaitGroup
	// stopping is when Run began to stop every subsystem (guarded by
	// mu); a subsystem that takes longer than slowStop is named in the log.
	stopping time.Time
	// apiToken is the token in force (token_file is re-read on reload).
	apiToken string
}

// New builds every subsystem the config asks for. Nothing touches the
// kernel until Run.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*Daemon, error) {
	d := &Daemon{log: log, opts: opts, file: cfg, reg: metrics.NewRegistry(), routes: route.NewManager(nil)}
	if err := d.reg.Register(d.routes.Collector()); err != nil {
		return nil, err
	}
	// Calls that could hang are bounded (nft runs: nft.Timeout; kernel
	// requests: netlinkTimeout); what hits a bound is logged and counted.
	bound.SetLogger(log)
	if err := registerAll(d.reg, bound.Collectors()); err != nil {
		return nil, fmt.Errorf("bound: %w", err)
	}
	if err := netlink.SetSocketTimeout(netlinkTimeout); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	d.addrs = newAddrSub(cfg, log.With("subsystem", "addrs"), netlinkAddrs)
	d.addrs.refresh()
	d.addrs.apply = d.relearn
	cfg = d.withLearned(cfg)
	d.cfg = cfg
	mon, err := monitor.New(cfg, log) // it tags its own logs
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	d.mon = mon
	d.addrs.changes = mon.InterfaceChanges
	d.subs = append(d.subs, &named{name: "monitor", sub: mon}, &named{name: "addrs", sub: d.addrs})
	for _, b := range builders {
		n, err := d.build(b, cfg)
		if err != nil {
			return nil, err
		}
		if n != nil {
			d.subs = append(d.subs, n)
		}
		if p, ok := n.subsystem().(*pdSub); ok {
			d.pd = p
		}
	}
	if d.pd != nil {
		// The PD prefixes were not known when cfg was first filled in.
		d.cfg = d.withLearned(d.file)
	}
	d.reportMissing(d.cfg)
	d.subs = append(d.subs, &named{name: "routes", sub: routesSub{d.routes, log.With("subsystem", "route")}})
	d.roleSettled()
	if cfg.API.Listen != "off" {
		token, err := apiToken(cfg.API)
		if err != nil {
			return nil, err
		}
		d.api, err = api.New(d, api.Options{Listen: cfg.API.Listen, Token: token, Registry: d.reg, History: cfg.API.History}, log.With("subsystem", "api"))
		if err != nil {
			return nil, err
		}
		d.apiToken = token
	}
	for _, s := range d.subs {
		d.logDecisions(s.sub)
	}
	return d, nil
}

func apiToken(a config.API) (string, error) {
	if a.TokenFile == "" {
		return a.Token, nil
	}
	b, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Subscribe, Snapshot and SetAdmin hand the API the monitor's view.
func (d *Daemon) Subscribe() (<-chan monitor.Event, func()) { return d.mon.Subscribe() }

// Snapshot returns every link's status, with its addresses in force
// (configured or learned) and the uses of its addresses not known yet.
func (d *Daemon) Snapshot() []monitor.Status {
	snap := d.mon.Snapshot()
	d.mu.Lock()
	cfg, missing := d.cfg, d.missing
	d.mu.Unlock()
	for i := range snap {
		s := &snap[i]
		if l := cfg.LinkByName(s.Link); l != nil {
			s.Address4, s.Address6 = l.Address4, l.Address6
			s.Gateway4, s.Gateway6 = l.Gateway4, l.Gateway6
		}
		more := 0
		for _, n := range missing {
			switch {
			case n.Link != s.Link:
			case len(s.Warnings) < 20:
				s.Warnings = append(s.Warnings, n.String())
			default:
				more++
			}
		}
		if more > 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("and %d more uses of the link's addresses not known yet", more))
		}
	}
	return snap
}

// SetAdmin forces a link down, drains it or clears the override.
func (d *Daemon) SetAdmin(link string, a monitor.Admin, reason string) error {
	return d.mon.SetAdmin(link, a, reason)
}

// ReloadFile re-reads the config file and applies it; on any error the
// running config stays.
func (d *Daemon) ReloadFile() error {
	cfg, err := config.Load(d.Config().File)
	if err == nil && d.opts.Strict {
		if ps := cfg.PermissionProblems(); len(ps) > 0 {
			err = fmt.Errorf("strict: files readable by group or others: %w", ps)
		}
	}
	if err != nil {
		d.log.Error("reload rejected: keeping the running config", "file", d.Config().File, "err", err)
		return err
	}
	return d.Reload(cfg)
}

// ReloadSignal is ReloadFile for SIGHUP: it also records the result in
// the API's decision log and metrics.
func (d *Daemon) ReloadSignal() error {
	err := d.ReloadFile()
	if d.api != nil {
		d.api.ObserveReload(err)
	}
	return err
}

// builder makes one optional subsystem; it returns nil when the config
// does not ask for it. Its logs carry subsystem=name.
type builder struct {
	name  string
	build func(cfg *config.Config, src monitor.Source, reg prometheus.Registerer, log *slog.Logger) (subsystem, error)
}

// builders lists the subsystems that consume the monitor's events, in
// start order. Each is registered in its own file of this package.
var builders []builder

// optional lists the subsystems that run only when their config section is
// present: a reload that removes the section stops them (one that adds it
// builds and starts them, for any builder).
var optional = map[string]func(*config.Config) bool{
	"bgp":   func(c *config.Config) bool { return c.BGP != nil },
	"dns":   func(c *config.Config) bool { return c.DNS != nil },
	"ipv6":  func(c *config.Config) bool { return c.IPv6 != nil },
	"pd":    func(c *config.Config) bool { return c.IPv6 != nil },
	"mptcp": func(c *config.Config) bool { return c.MPTCP != nil },
}

// Monitor returns the link monitor, the source of every link event.
func (d *Daemon) Monitor() *monitor.Monitor { return d.mon }

// Config returns the config in force.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Run starts every subsystem and blocks until ctx is cancelled or one of
// them fails; then it stops them all and returns the first error.
// Subsystems a reload adds or removes meanwhile are started and stopped
// by the reload (lifecycle.go).
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.opts.Events != nil {
		events, stop := d.mon.Subscribe()
		defer stop()
		go writeEvents(d.opts.Events, events)
	}
	d.reloadMu.Lock()
	d.mu.Lock()
	d.runCtx, d.stopAll = ctx, cancel
	subs := slices.Clone(d.subs)
	d.mu.Unlock()
	if d.api != nil {
		subs = append(subs, &named{name: "api", sub: apiRunner{d.api}})
	}
	for _, s := range subs {
		d.start(s)
	}
	d.reloadMu.Unlock()
	d.log.Info("multihome running", "links", len(d.Config().Links), "subsystems", len(subs))
	<-ctx.Done()
	// No reload starts a subsystem from now on.
	d.reloadMu.Lock()
	d.mu.Lock()
	d.runCtx = nil
	d.stopping = time.Now()
	d.mu.Unlock()
	d.reloadMu.Unlock()
	d.log.Info("multihome stopping")
	d.wg.Wait()
	d.mu.Lock()
	errs := d.runErrs
	took := time.Since(d.stopping)
	d.mu.Unlock()
	d.log.Info("multihome stopped", "took", took.Round(time.Millisecond))
	return errors.Join(errs...)
}

// Reload applies a new config to every subsystem. The config has already
// been parsed and validated; a subsystem that rejects it leaves its state
// as it was and the error is returned, so the daemon keeps running on the
// old config where it could not apply the new one.
//
// cfg is the file's config: the prefixes learned by DHCPv6-PD are filled
// into it before it is applied, so a reload keeps them.
func (d *Daemon) Reload(cfg *config.Config) error {
	return d.reload(cfg, "config reloaded")
}

// relearn re-applies the file's config in force after a change of the
// learned prefixes or addresses.
func (d *Daemon) relearn() {
	_ = d.reload(nil, "learned prefixes and addresses applied") // it logs what failed
}

// withLearned returns the file's config with what the daemon learned
// filled in: the links' addresses the file leaves unset, the prefixes
// delegated by DHCPv6-PD.
func (d *Daemon) withLearned(file *config.Config) *config.Config {
	return withAddrs(d.withPD(file), d.addrs.Learned())
}

// reload applies file (nil: the file's config in force) with the learned
// prefixes filled in.
func (d *Daemon) reload(file *config.Config, what string) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.stoppingNow() {
		err := errors.New("multihome is stopping: reload not applied")
		d.log.Warn(err.Error())
		return err
	}
	// An ha section added or removed changes every subsystem's role.
	defer d.roleSettled()
	relearn, applied := file == nil, false
	d.mu.Lock()
	prevFile := d.file
	d.mu.Unlock()
	if relearn {
		file = prevFile
	} else {
		d.addrs.setConfig(file)
		defer func() {
			if !applied {
				d.addrs.setConfig(prevFile) // refused: learn for the config in force
			}
		}()
	}
	cfg := d.withLearned(file)
	prev := d.Config()
	if err := d.apply(prev, cfg, relearn); err != nil {
		if !relearn {
			d.log.Error("reload rejected: keeping the running config", "err", err)
			return err
		}
		// What was learned (an address gone from an interface, a
		// delegation) is a fact, not a choice: the old config does not
		// hold any better, so a subsystem that cannot apply it yet
		// (outbound: no route via a gateway the interface has no address
		// for) is reported and the others still follow.
		d.log.Error("learned addresses or prefixes not applied everywhere", "err", err)
	}
	d.mu.Lock()
	d.cfg, d.file = cfg, file
	d.mu.Unlock()
	applied = true
	d.reportMissing(cfg)
	d.log.Info(what, "file", cfg.File, "links", len(cfg.Links))
	return nil
}

// stoppingNow reports whether Run was asked to stop: a reload that comes
// in then (a SIGHUP just before the SIGTERM) is not applied, since the
// subsystems it would update are going away.
func (d *Daemon) stoppingNow() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.runCtx != nil && d.runCtx.Err() != nil || !d.stopping.IsZero()
}

// apiRunner adapts the API server to the subsystem interface: the API
// reads the config through the daemon, so it has nothing to update.
type apiRunner struct{ s *api.Server }

func (a apiRunner) Run(ctx context.Context) error { return a.s.Run(ctx) }
func (a apiRunner) Update(*config.Config) error   { return nil }

func writeEvents(w io.Writer, events <-chan monitor.Event) {
	enc := json.NewEncoder(w)
	for e := range events {
		if err := enc.Encode(e); err != nil {
			return
		}
	}
}
