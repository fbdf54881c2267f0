// Command dnsserve runs multihome's DNS server alone, for benchmarks: it
// loads a config and serves it with every link up, until interrupted.
//
//	dnsserve -config bench.yaml
//	dnsserve -mixed-queries FILE   # writes bench/dns.sh's mixed workload
//
// bench/dns.sh runs it against dnsperf, next to Knot and gdnsd.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/dns"
	"github.com/multihome/multihome/monitor"
)

// allUp is a monitor.Source whose links are all up and never change.
type allUp struct {
	monitor.Bus
	st []monitor.Status
}

func (a *allUp) Snapshot() []monitor.Status { return a.st }

func main() {
	path := flag.String("config", "", "config file")
	prof := flag.String("cpuprofile", "", "write a CPU profile to this file")
	mixed := flag.String("mixed-queries", "", "write bench/dns.sh's mixed workload (dnsperf -B format) to this file and exit")
	flag.Parse()
	if *mixed != "" {
		if err := mixedQueries(*mixed, 2000); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	src := &allUp{}
	for _, l := range cfg.Links {
		src.st = append(src.st, monitor.Status{Link: l.Name, State: monitor.Up, Health: monitor.Up, Since: time.Now().Add(-time.Hour)})
	}
	srv, err := dns.New(cfg, src, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	st := srv.Stats()
	log.Info("served", "queries", st.Queries, "udp", st.UDP, "tcp", st.TCP)
}
