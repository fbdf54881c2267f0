package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// childEnv makes the test binary run as a child: the real link monitor
// and the DNS server, in whatever namespace it was started in (the lab's
// gateway), with the config file the variable names, until stdin closes.
const childEnv = "MULTIHOME_DNS_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	if os.Geteuid() == 0 {
		lab.CleanupStale(lab.TestPrefix)
		if stale, _ := netns.Stale(nsPrefix); len(stale) > 0 {
			for _, n := range stale {
				netns.Delete(n)
			}
		}
	}
	code := m.Run()
	// No namespace of this process may outlive the tests.
	for _, prefix := range []string{lab.TestPrefix, nsPrefix} {
		mine := fmt.Sprintf("%s%dx", prefix, os.Getpid())
		if left, _ := netns.List(mine); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "namespaces left behind: %v\n", left)
			if prefix == lab.TestPrefix {
				lab.Cleanup(mine)
			} else {
				for _, n := range left {
					netns.Delete(n)
				}
			}
			code = 1
		}
	}
	os.Exit(code)
}

func runChild(path string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	mon, err := monitor.New(cfg, log.With("subsystem", "monitor"))
	if err != nil {
		log.Error("monitor", "err", err)
		return 2
	}
	srv, err := New(cfg, mon, log.With("subsystem", "dns"))
	if err != nil {
		log.Error("dns", "err", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	errc := make(chan error, 2)
	go func() { errc <- mon.Run(ctx) }()
	go func() { errc <- srv.Run(ctx) }()
	code := 0
	for range 2 {
		if err := <-errc; err != nil && ctx.Err() == nil {
			log.Error("run", "err", err)
			code = 1
			cancel()
		}
	}
	return code
}
