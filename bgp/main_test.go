package bgp

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// childEnv, when set, makes the test binary the speaker child: it runs
// the monitor and the speaker with the config file it names, in the
// namespace it was started in (the lab's gateway), writes the monitor's
// events as JSON lines on stdout and stops when stdin closes. A line
// "standby" or "master" on stdin drives the speaker's HA role
// (SetStandby, as the daemon does on keepalived's reports);
// childStandbyEnv set starts it as the standby.
const (
	childEnv        = "MULTIHOME_BGP_CHILD"
	childStandbyEnv = "MULTIHOME_BGP_CHILD_STANDBY"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	if os.Geteuid() == 0 {
		cleanupStaleRouters()
	}
	os.Exit(labtest.RunTests(m))
}

func runChild(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	mon, err := monitor.New(cfg, log)
	if err != nil {
		log.Error("monitor", "err", err)
		return 2
	}
	sp, err := New(cfg, mon, log.With("subsystem", "bgp"))
	if err != nil {
		log.Error("bgp", "err", err)
		return 2
	}
	if os.Getenv(childStandbyEnv) != "" {
		sp.SetStandby(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, stop := mon.Subscribe()
	defer stop()
	var wg sync.WaitGroup
	code := 0
	for _, run := range []func(context.Context) error{mon.Run, sp.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				log.Error("subsystem failed", "err", err)
				code = 1
			}
			cancel()
		})
	}
	go func() {
		enc := json.NewEncoder(os.Stdout)
		for e := range events {
			enc.Encode(e)
		}
	}()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "standby":
				sp.SetStandby(true)
			case "master":
				sp.SetStandby(false)
			}
		}
		cancel()
	}()
	wg.Wait()
	return code
}
