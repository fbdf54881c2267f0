// Package labtest holds the lab's helpers for tests: building a lab that is
// torn down when the test ends ([Up]), the TestMain hygiene of packages
// whose tests build labs ([RunTests]), and re-executing the test binary
// inside a lab namespace ([StartChild]). It is the only lab code that
// imports the testing package; nothing outside _test.go files may import
// it, so neither the daemon nor cmd/multihome-lab links testing
// (cmd/multihome's TestDeps checks the daemon).
package labtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

// Up builds a lab for a test and tears it down when the test ends, even if
// it fails or panics. It skips the test when not run as root. An empty
// spec.Name gets a unique name with lab.TestPrefix.
func Up(t testing.TB, spec lab.Spec) *lab.Lab {
	t.Helper()
	return up(t, spec, lab.Up, (*lab.Lab).Down)
}

// UpPair builds a pair lab (two gateways, lab.UpPair) for a test and
// tears it down when the test ends; it skips the test when not run as
// root.
func UpPair(t testing.TB, spec lab.Spec) *lab.Pair {
	t.Helper()
	return up(t, spec, lab.UpPair, (*lab.Pair).Down)
}

// up builds with upFn and tears down with down: Up and UpPair.
func up[L any](t testing.TB, spec lab.Spec, upFn func(context.Context, lab.Spec, *slog.Logger) (L, error), down func(L) error) L {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces")
	}
	if spec.Name == "" {
		spec.Name = netns.Unique(lab.TestPrefix, "")
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	l, err := upFn(context.Background(), spec, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := down(l); err != nil {
			t.Error(err)
		}
	})
	return l
}

// UpSplitPair builds a split-uplinks pair lab (lab.UpSplitPair: ISP 1
// reaches gwa only, ISP 2 gwb only) for a test and tears it down when the
// test ends; it skips the test when not run as root.
func UpSplitPair(t testing.TB) *lab.Pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces")
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	p, err := lab.UpSplitPair(context.Background(), lab.Spec{Name: netns.Unique(lab.TestPrefix, "")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Down(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// RunTests runs a test binary's tests with the lab's hygiene, for the
// TestMain of packages whose tests build labs: as root, it first sweeps
// the labs (namespaces and FRR instances) that test processes which no
// longer run left behind; after the tests, a namespace of this process
// or FRR instance still there is removed and fails the run. It returns the exit code.
func RunTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		if removed, err := lab.CleanupStale(lab.TestPrefix); len(removed) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "swept stale lab namespaces %v (err %v)\n", removed, err)
		}
		lab.CleanupStaleFRR(lab.TestPrefix)
	}
	code := m.Run()
	mine := fmt.Sprintf("%s%dx", lab.TestPrefix, os.Getpid())
	if stopped, _ := lab.CleanupFRR(mine); len(stopped) > 0 {
		fmt.Fprintf(os.Stderr, "FRR instances left running: %v\n", stopped)
		code = 1
	}
	if left, _ := netns.List(mine); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "namespaces left behind: %v\n", left)
		lab.Cleanup(mine)
		code = 1
	}
	return code
}
