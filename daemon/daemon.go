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
	"sync"

	"github.com/multihome/multihome/config"
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

	mu  sync.Mutex // guards cfg for Config(); reloads are serialised by reloadMu
	cfg *config.Config

	reloadMu sync.Mutex
}

type named struct {
	name string
	sub  subsystem
}

// New builds every subsystem the config asks for. Nothing touches the
// kernel until Run.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*Daemon, error) {
	d := &Daemon{log: log, opts: opts, cfg: cfg}
	mon, err := monitor.New(cfg, log.With("subsystem", "monitor"))
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	d.mon = mon
	d.subs = append(d.subs, named{"monitor", mon})
	for _, b := range builders {
		s, err := b.build(cfg, mon, log.With("subsystem", b.name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		if s != nil {
			d.subs = append(d.subs, named{b.name, s})
		}
	}
	return d, nil
}

// builder makes one optional subsystem; it returns nil when the config
// does not ask for it.
type builder struct {
	name  string
	build func(cfg *config.Config, src monitor.Source, log *slog.Logger) (subsystem, error)
}

// builders lists the subsystems that consume the monitor's events, in
// start order. Each is registered in its own file of this package.
var builders []builder

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
	errc := make(chan error, len(d.subs))
	var wg sync.WaitGroup
	for _, s := range d.subs {
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
func (d *Daemon) Reload(cfg *config.Config) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	var errs []error
	for _, s := range d.subs {
		if err := s.sub.Update(cfg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Error("reload failed", "err", err)
		return err
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.log.Info("config reloaded", "file", cfg.File, "links", len(cfg.Links))
	return nil
}

func writeEvents(w io.Writer, events <-chan monitor.Event) {
	enc := json.NewEncoder(w)
	for e := range events {
		if err := enc.Encode(e); err != nil {
			return
		}
	}
}
