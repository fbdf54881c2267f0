package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/config"
)

// named is one running subsystem with what the daemon needs to stop it
// alone (a reload that removes its section).
type named struct {
	name string
	sub  subsystem
	// cols are the collectors its builder registered.
	cols []prometheus.Collector

	// Set by start (guarded by Daemon.mu).
	cancel context.CancelFunc
	done   chan struct{}
	// quiet: its Run ending is expected (being removed, or still on
	// trial after a reload added it), so it does not stop the daemon.
	quiet bool
	err   error
}

// startGrace is how long a subsystem a reload adds must run before the
// reload counts as applied: a DNS server that cannot bind its listen
// addresses, a BGP speaker that cannot listen, fail within it, and the
// reload is refused instead of the daemon stopping.
const startGrace = 500 * time.Millisecond

// slowStop is how long a subsystem may take to stop with the daemon
// before the log names it.
const slowStop = 2 * time.Second

// stopWait bounds how long a reload waits for a removed subsystem to stop.
const stopWait = 15 * time.Second

// collectorRecorder registers collectors and remembers them, so that a subsystem's
// metrics leave with it.
type collectorRecorder struct {
	prometheus.Registerer
	cols []prometheus.Collector
}

func (r *collectorRecorder) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.cols = append(r.cols, c)
	return nil
}

func (r *collectorRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// registerAll registers every collector of a subsystem.
func registerAll(reg prometheus.Registerer, cols []prometheus.Collector) error {
	for _, c := range cols {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// build runs one builder; nil when the config does not ask for it.
func (d *Daemon) build(b builder, cfg *config.Config) (*named, error) {
	rec := &collectorRecorder{Registerer: d.reg}
	s, err := b.build(cfg, d.mon, rec, d.log)
	if err != nil || s == nil {
		d.unregister(rec.cols)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		return nil, nil
	}
	if p, ok := s.(*pdSub); ok {
		p.apply = d.relearn
	}
	if r, ok := s.(routeOwner); ok {
		if err := r.UseRoutes(d.routes); err != nil {
			d.unregister(rec.cols)
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
	}
	d.wireRole(s, cfg)
	d.logDecisions(s)
	return &named{name: b.name, sub: s, cols: rec.cols}, nil
}

func (d *Daemon) unregister(cols []prometheus.Collector) {
	for _, c := range cols {
		d.reg.Unregister(c)
	}
}

// start runs s under the daemon's run context. Unless s is quiet, its end
// stops the daemon; an error is kept for Run to return.
func (d *Daemon) start(s *named) {
	ctx, cancel := context.WithCancel(d.runCtx)
	s.cancel, s.done = cancel, make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		err := s.sub.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		d.mu.Lock()
		s.err = err
		quiet := s.quiet
		if !d.stopping.IsZero() {
			if took := time.Since(d.stopping); took > slowStop {
				d.log.Warn("subsystem was slow to stop", "subsystem", s.name, "took", took.Round(time.Millisecond))
			}
		}
		if !quiet && err != nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			d.runErrs = append(d.runErrs, err)
		}
		stopAll := d.stopAll
		d.mu.Unlock()
		close(s.done)
		cancel()
		if quiet {
			return
		}
		if err != nil {
			d.log.Error("subsystem failed", "subsystem", s.name, "err", err)
		}
		stopAll()
	}()
}

// stop ends s alone and waits (bounded) for its Run to return.
func (d *Daemon) stop(s *named) {
	d.mu.Lock()
	s.quiet = true
	d.mu.Unlock()
	if s.cancel == nil {
		return // never started
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(stopWait):
		d.log.Error("subsystem did not stop in time after its section was removed", "subsystem", s.name, "waited", stopWait)
	}
}

// trial starts s, added by a reload, and waits startGrace: an error in
// that time is returned and s is stopped.
func (d *Daemon) trial(s *named) error {
	d.mu.Lock()
	running := d.runCtx != nil
	s.quiet = running
	d.mu.Unlock()
	if !running {
		return nil // Run starts it
	}
	d.start(s)
	select {
	case <-s.done:
		d.mu.Lock()
		err := s.err
		d.mu.Unlock()
		if err == nil {
			err = errors.New("stopped at once")
		}
		return fmt.Errorf("%s: %w", s.name, err)
	case <-time.After(startGrace):
	}
	d.mu.Lock()
	s.quiet = false
	d.mu.Unlock()
	return nil
}

// apply makes the running daemon match cfg, all or nothing: subsystems
// whose section appeared are built and started, those whose section went
// are stopped, the others updated, the API reconfigured, the log level
// set. If any step fails, what was done is undone and the error returned.
// relearn (only learned addresses or prefixes changed) updates every
// subsystem it can and returns the errors of the others.
// It is long on purpose: it is one transaction, whose undo steps (closures
// over what was added and updated so far) must stay beside the steps.
func (d *Daemon) apply(prev, cfg *config.Config, relearn bool) error {
	if err := d.fixed(prev, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	subs := slices.Clone(d.subs)
	d.mu.Unlock()
	have := map[string]*named{}
	for _, s := range subs {
		have[s.name] = s
	}
	var added, removed []*named
	undoAdded := func() {
		for _, s := range added {
			d.stop(s)
			d.unregister(s.cols)
		}
	}
	for _, b := range builders {
		want := optional[b.name]
		s, ok := have[b.name]
		switch {
		case ok && want != nil && !want(cfg):
			removed = append(removed, s)
		case !ok:
			n, err := d.build(b, cfg)
			if err != nil {
				undoAdded()
				return err
			}
			if n != nil {
				added = append(added, n)
			}
		}
	}
	var failed []error
	var updated []*named
	rollback := func() {
		for _, s := range slices.Backward(updated) {
			if err := s.sub.Update(prev); err != nil {
				d.log.Error("rolling back a refused reload failed", "subsystem", s.name, "err", err)
			}
		}
		undoAdded()
	}
	// Update the subsystems that stay; if one refuses, give the ones
	// already updated the previous config back, so the daemon never runs
	// half on the old config and half on the new one.
	for _, s := range subs {
		if slices.Contains(removed, s) {
			continue
		}
		if err := s.sub.Update(cfg); err != nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			if relearn {
				failed = append(failed, err)
				continue
			}
			rollback()
			return err
		}
		updated = append(updated, s)
	}
	for i, s := range added {
		if err := d.trial(s); err != nil {
			added = added[:i+1]
			rollback()
			return err
		}
		d.log.Info("subsystem started: its section was added", "subsystem", s.name)
	}
	if err := d.reconfigureAPI(prev, cfg); err != nil {
		rollback()
		return err
	}
	for _, s := range removed {
		d.stop(s)
		d.unregister(s.cols)
		d.log.Info("subsystem stopped: its section was removed", "subsystem", s.name)
	}
	d.mu.Lock()
	next := slices.DeleteFunc(slices.Clone(d.subs), func(s *named) bool { return slices.Contains(removed, s) })
	next = append(next, added...)
	d.subs = next
	d.pd = nil
	for _, s := range next {
		if p, ok := s.sub.(*pdSub); ok {
			d.pd = p
		}
	}
	d.mu.Unlock()
	if d.opts.LogLevel != nil {
		d.opts.LogLevel.Set(logLevel(cfg.Log.Level))
	}
	return errors.Join(failed...)
}

// fixed refuses the changes that cannot be applied to a running daemon,
// with the reason.
func (d *Daemon) fixed(prev, cfg *config.Config) error {
	var errs []error
	if (prev.API.Listen == "off") != (cfg.API.Listen == "off") {
		errs = append(errs, errors.New("api.listen: turning the API on or off takes a restart (the API is the way a restart is avoided)"))
	}
	if prev.API.History != cfg.API.History {
		errs = append(errs, fmt.Errorf("api.history: the decision log's size is fixed at start (%d): restart multihome to change it", prev.API.History))
	}
	if prev.Log.Format != cfg.Log.Format {
		errs = append(errs, fmt.Errorf("log.format: the log format is fixed at start (%s): restart multihome to change it", orDefault(prev.Log.Format, "text")))
	}
	return errors.Join(errs...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// reconfigureAPI applies the api section: token (token_file re-read) and
// listen address.
func (d *Daemon) reconfigureAPI(prev, cfg *config.Config) error {
	if d.api == nil || cfg.API.Listen == "off" {
		return nil
	}
	token, err := apiToken(cfg.API)
	if err != nil {
		return err
	}
	d.mu.Lock()
	same := token == d.apiToken && prev.API.Listen == cfg.API.Listen
	d.mu.Unlock()
	if same {
		return nil
	}
	if err := d.api.Reconfigure(cfg.API.Listen, token); err != nil {
		return err
	}
	d.mu.Lock()
	d.apiToken = token
	d.mu.Unlock()
	return nil
}

func (n *named) subsystem() subsystem {
	if n == nil {
		return nil
	}
	return n.sub
}

// running returns the subsystems running now.
func (d *Daemon) running() []*named {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.subs)
}
