// Command multihome is the multihoming controller: the daemon and its CLI.
// It is what runs on gateways, so it links neither the lab nor the demo
// (cmd/multihome-lab) nor the testing package: TestDeps checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/daemon"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"run":          {"run the daemon: multihome run --config FILE", cmdRun},
	"check-config": {"validate a config file: multihome check-config FILE", cmdCheckConfig},
	"version":      {"print the version", cmdVersion},
	"status":       {"show the links: multihome status [--api ADDR]", cmdStatus},
	"events":       {"show the decision log: multihome events [--follow]", cmdEvents},
	"link":         {"act on a link: multihome link down|up|drain NAME [--reason R]", cmdLink},
	"reload":       {"reload the daemon's config through the API", cmdReload},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: multihome COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nmultihome COMMAND -h shows a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "multihome: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "multihome %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func cmdVersion(args []string) error {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += "+" + s.Value[:min(12, len(s.Value))]
			}
		}
	}
	fmt.Println("multihome", v)
	return nil
}

func cmdCheckConfig(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	strict := fs.Bool("strict", false, "fail when the config file or a secret file is readable by group or others")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: multihome check-config FILE")
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(os.Stderr, e)
			}
			return fmt.Errorf("%d error(s) in %s", len(es), fs.Arg(0))
		}
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if err := strictCheck(*strict, cfg); err != nil {
		return err
	}
	fmt.Printf("%s: ok, %d link(s)\n", fs.Arg(0), len(cfg.Links))
	return nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	return newLeveledLogger(w, c, nil)
}

// newLeveledLogger is newLogger with its level in lvl (set from c), so
// that a reload can change it.
func newLeveledLogger(w io.Writer, c config.Log, lvl *slog.LevelVar) *slog.Logger {
	if lvl == nil {
		lvl = new(slog.LevelVar)
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	lvl.Set(l)
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("config", "/etc/multihome/multihome.yaml", "config file")
	events := fs.String("events", "", "also write every link event as a JSON line to this file (- for stdout)")
	dryRun := fs.Bool("dry-run", false, "print the kernel state the config would produce and exit")
	strict := fs.Bool("strict", false, "refuse a config (at start and on reload) when it or a secret file is readable by group or others")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *dryRun {
		return dryRunOutput(os.Stdout, cfg)
	}
	lvl := new(slog.LevelVar)
	log := newLeveledLogger(os.Stderr, cfg.Log, lvl)
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w.Error())
	}
	if err := strictCheck(*strict, cfg); err != nil {
		return err
	}
	opts := daemon.Options{LogLevel: lvl, Strict: *strict}
	if *events != "" {
		w := os.Stdout
		if *events != "-" {
			f, err := os.OpenFile(*events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		opts.Events = w
	}
	d, err := daemon.New(cfg, log, opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			log.Info("SIGHUP: reloading", "file", *path)
			_ = d.ReloadSignal() // the daemon logs the outcome
		}
	}()
	return d.Run(ctx)
}

// strictCheck refuses, with --strict, a config whose file or secret files
// group or others can read.
func strictCheck(strict bool, cfg *config.Config) error {
	if ps := cfg.PermissionProblems(); strict && len(ps) > 0 {
		return fmt.Errorf("--strict: %d file(s) readable by group or others:\n%w", len(ps), ps)
	}
	return nil
}
