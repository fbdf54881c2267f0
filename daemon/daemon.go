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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/metrics"
	"github.com/multihome/multihome/monitor"
)

// Options are the daemon's settings that do not come from the config file.
type Options struct {
	// Events, if set, receives every monitor event as one JSON object per
	// line (for scripts and tests; the API serves the same stream).
	Events io.Writer
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
	subs []named
	reg  *prometheus.Registry
	api  *api.Server

	mu  sync.Mutex // guards cfg and file; reloads are serialised by reloadMu
	cfg *config.Config
	// file is the config as loaded, cfg the one in force: file with the
	// prefixes learned by DHCPv6-PD filled in (withLearned).
	file *config.Config
	pd   *pdSub
	// addrs learns the addresses the config leaves unset; missing are the
	// uses of addresses not known (yet), as last reported.
	addrs   *addrSub
	missing []string

	reloadMu sync.Mutex
}

type named struct {
	name string
	sub  subsystem
}

// New builds every subsystem the config asks for. Nothing touches the
// kernel until Run.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*Daemon, error) {
	d := &Daemon{log: log, opts: opts, file: cfg, reg: metrics.NewRegistry()}
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
	d.subs = append(d.subs, named{"monitor", mon}, named{"addrs", d.addrs})
	for _, b := range builders {
		s, err := b.build(cfg, mon, d.reg, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		if s != nil {
			d.subs = append(d.subs, named{b.name, s})
		}
		if p, ok := s.(*pdSub); ok {
			d.pd = p
			p.apply = d.relearn
		}
	}
	if d.pd != nil {
		// The PD prefixes were not known when cfg was first filled in.
		d.cfg = d.withLearned(d.file)
	}
	d.reportMissing(d.cfg)
	if cfg.API.Listen != "off" {
		token, err := apiToken(cfg.API)
		if err != nil {
			return nil, err
		}
		d.api, err = api.New(d, api.Options{Listen: cfg.API.Listen, Token: token, Registry: d.reg, History: cfg.API.History}, log.With("subsystem", "api"))
		if err != nil {
			return nil, err
		}
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
		}
		for _, n := range config.SelfAddressNeeds(cfg) {
			if n.Link == s.Link && slices.Contains(missing, n.String()) {
				s.Warnings = append(s.Warnings, n.String())
			}
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
// present. Adding or removing such a section takes a restart.
var optional = map[string]func(*config.Config) bool{
	"bgp":  func(c *config.Config) bool { return c.BGP != nil },
	"dns":  func(c *config.Config) bool { return c.DNS != nil },
	"ipv6": func(c *config.Config) bool { return c.IPv6 != nil },
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
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.opts.Events != nil {
		events, stop := d.mon.Subscribe()
		defer stop()
		go writeEvents(d.opts.Events, events)
	}
	subs := d.subs
	if d.api != nil {
		subs = append(subs[:len(subs):len(subs)], named{"api", apiRunner{d.api}})
	}
	errc := make(chan error, len(subs))
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.sub.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				err = fmt.Errorf("%s: %w", s.name, err)
				d.log.Error("subsystem failed", "subsystem", s.name, "err", err)
			} else {
				err = nil
			}
			errc <- err
			cancel()
		}()
	}
	d.log.Info("multihome running", "links", len(d.Config().Links), "subsystems", len(d.subs))
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	d.log.Info("multihome stopped")
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
	if err := d.reload(nil, "learned prefixes and addresses applied"); err != nil {
		d.log.Error("applying learned prefixes and addresses", "err", err)
	}
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
	for name, has := range optional {
		if has(prev) != has(cfg) {
			err := fmt.Errorf("the %s section was added or removed: restart multihome to apply that", name)
			d.log.Error("reload rejected: keeping the running config", "err", err)
			return err
		}
	}
	// Apply to each subsystem in turn; if one refuses, give the ones
	// already updated the previous config back, so the daemon never runs
	// half on the old config and half on the new one. What was learned
	// (an address gone from an interface, a delegation) is a fact, not a
	// choice: the old config does not hold any better, so a subsystem that
	// cannot apply it yet (outbound: no route via a gateway the interface
	// has no address for) is reported and the others still follow.
	var failed []error
	for i, s := range d.subs {
		err := s.sub.Update(cfg)
		if err == nil {
			continue
		}
		err = fmt.Errorf("%s: %w", s.name, err)
		if relearn {
			failed = append(failed, err)
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if rerr := d.subs[j].sub.Update(prev); rerr != nil {
				d.log.Error("rolling back a refused reload failed", "subsystem", d.subs[j].name, "err", rerr)
			}
		}
		d.log.Error("reload rejected: keeping the running config", "err", err)
		return err
	}
	d.mu.Lock()
	d.cfg, d.file = cfg, file
	d.mu.Unlock()
	applied = true
	d.reportMissing(cfg)
	d.log.Info(what, "file", cfg.File, "links", len(cfg.Links))
	return errors.Join(failed...)
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
