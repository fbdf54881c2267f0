package outbound

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// childEnv names the config file a re-executed test binary runs the real
// monitor and the controller with (see runChild).
const childEnv = "MULTIHOME_OUTBOUND_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(labtest.RunTests(m))
}

// runChild runs the real link monitor and the controller in this process,
// which the parent started inside the lab's gateway namespace with
// labtest.StartChild. It stops, removing its kernel state, when stdin
// closes.
func runChild(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mon, err := monitor.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := New(cfg, mon, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	go mon.Run(ctx)
	if err := c.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
