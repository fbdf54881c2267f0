package ha_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/daemon"
	"github.com/multihome/multihome/lab/labtest"
)

// childEnv, when set, makes the test binary a multihome daemon: it runs
// the config file it names in the namespace it was started in (a pair
// lab's gateway), writes the link monitor's events as JSON lines on
// stdout and its log on stderr, reloads its config on SIGHUP and stops
// on SIGTERM (sent by the kernel
// too when the test process dies).
const childEnv = "MULTIHOME_HA_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
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
	d, err := daemon.New(cfg, log, daemon.Options{Events: os.Stdout})
	if err != nil {
		log.Error("daemon", "err", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			d.ReloadSignal()
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("daemon", "err", err)
		return 1
	}
	return 0
}
