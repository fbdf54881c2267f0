// Command dnsserve runs multihome's DNS server alone, for benchmarks: it
// loads a config and serves it with every link up, until interrupted.
//
//	dnsserve -config bench.yaml
//	dnsserve -mixed-queries FILE   # writes bench/dns.sh's mixed workload
//	dnsserve -write-scale DIR -names N   # bench/dns-scale.sh's zone
//	dnsserve -config DIR/multihome.yaml -flap 1s -probe hN.example.  # flaps on SIGUSR1
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
	scaleDir := flag.String("write-scale", "", "write a config with -names steered names and a query file to this directory and exit")
	names := flag.Int("names", 100, "steered names for -write-scale")
	flap := flag.Duration("flap", 0, "from a SIGUSR1 to the next, toggle isp1 down and up this often, timing the answers (bench/dns-scale.sh)")
	probe := flag.String("probe", "", "the name whose answers -flap times")
	flag.Parse()
	if *scaleDir != "" {
		if err := writeScale(*scaleDir, *names); err != nil {
			fatal(err)
		}
		return
	}
	if *mixed != "" {
		if err := mixedQueries(*mixed, 2000); err != nil {
			fatal(err)
		}
		return
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := config.Load(*path)
	if err != nil {
		fatal(err)
	}
	src := &allUp{}
	for _, l := range cfg.Links {
		src.st = append(src.st, monitor.Status{Link: l.Name, State: monitor.Up, Health: monitor.Up, Since: time.Now().Add(-time.Hour)})
	}
	srv, err := dns.New(cfg, src, log)
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var fl *flapper
	var done <-chan struct{}
	if *flap > 0 {
		fl = &flapper{src: src, srv: srv, log: log, probe: *probe, every: *flap}
		done = flapOnSignal(ctx, fl)
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	st := srv.Stats()
	log.Info("served", "queries", st.Queries, "udp", st.UDP, "tcp", st.TCP)
	if fl != nil {
		<-done
		fmt.Println(fl.summary())
	}
}

// fatal prints err and exits with status 2.
func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

// flapOnSignal has fl flap the links from a SIGUSR1 to the next (or until
// ctx is done); the channel returned closes when it has stopped.
func flapOnSignal(ctx context.Context, fl *flapper) <-chan struct{} {
	done := make(chan struct{})
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		defer close(done)
		select {
		case <-usr1:
		case <-ctx.Done():
			return
		}
		// The next SIGUSR1 stops the flapping.
		fctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-usr1:
			case <-ctx.Done():
			}
			cancel()
		}()
		fl.run(fctx)
	}()
	return done
}
