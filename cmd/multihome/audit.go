package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"

	"github.com/multihome/multihome/audit"
	"github.com/multihome/multihome/config"
)

func init() {
	commands["audit"] = command{"find single points of failure: multihome audit [--config FILE] [--discover] [--format text|json|dot|svg]", cmdAudit}
}

// exitFindings is the exit status when a finding at or above --fail-on
// exists.
const exitFindings = 3

func cmdAudit(args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	path := fs.String("config", "/etc/multihome/multihome.yaml", "config file")
	discover := fs.Bool("discover", false, "also trace each link's paths (root, in the gateway's namespace)")
	format := fs.String("format", "text", "text, json, dot or svg")
	failOn := fs.String("fail-on", "high", "exit 3 when a finding of this severity or higher exists: high, medium, low or info")
	maxTTL := fs.Int("max-ttl", 16, "discovery: highest TTL (at most 16)")
	timeout := fs.Duration("timeout", 500*time.Millisecond, "discovery: wait per probe")
	method := fs.String("method", "both", "discovery: icmp, udp or both")
	attempts := fs.Int("attempts", 2, "discovery: probes of a silent hop")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 1 && !isFlagSet(fs, "config") {
		*path = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return errors.New("usage: multihome audit [--config FILE] [--discover] [--format text|json|dot|svg] [--fail-on high|medium|low]")
	}
	threshold, err := audit.ParseSeverity(*failOn)
	if err != nil {
		return err
	}
	switch *format {
	case "text", "json", "dot", "svg":
	default:
		return fmt.Errorf("unknown format %q: want text, json, dot or svg", *format)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	r := audit.Static(cfg)
	if *discover {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		d, err := audit.Discover(ctx, cfg, audit.DiscoverOptions{MaxTTL: *maxTTL, Timeout: *timeout, Method: *method, Attempts: *attempts})
		if err != nil {
			return fmt.Errorf("discover: %w", err)
		}
		r.AddDiscovery(cfg, d)
	}
	w := bufio.NewWriter(os.Stdout)
	switch *format {
	case "text":
		err = r.WriteText(w)
	case "json":
		err = r.WriteJSON(w)
	case "dot":
		err = r.WriteDOT(w)
	case "svg":
		err = writeSVG(r, w)
	}
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	if r.AtLeast(threshold) {
		os.Exit(exitFindings)
	}
	return nil
}

// writeSVG uses Graphviz when it is installed, the built-in layout
// otherwise.
func writeSVG(r *audit.Report, w io.Writer) error {
	if dot, err := exec.LookPath("dot"); err == nil {
		var in strings.Builder
		if err := r.WriteDOT(&in); err == nil {
			cmd := exec.Command(dot, "-Tsvg")
			cmd.Stdin = strings.NewReader(in.String())
			if out, err := cmd.Output(); err == nil {
				_, err = w.Write(out)
				return err
			}
		}
	}
	return r.WriteSVG(w)
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
