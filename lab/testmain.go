package lab

import (
	"fmt"
	"os"
	"testing"

	"github.com/multihome/multihome/netns"
)

// RunTests runs a test binary's tests with the lab's hygiene, for the
// TestMain of packages whose tests build labs: as root, it first sweeps
// the labs (namespaces and FRR instances) that test processes which no
// longer run left behind; after the tests, a namespace of this process
// or FRR instance still there is removed and fails the run. It returns the exit code.
func RunTests(m *testing.M) int {
	if os.Geteuid() == 0 {
		if removed, err := CleanupStale(TestPrefix); len(removed) > 0 || err != nil {
			fmt.Fprintf(os.Stderr, "swept stale lab namespaces %v (err %v)\n", removed, err)
		}
		CleanupStaleFRR(TestPrefix)
	}
	code := m.Run()
	mine := fmt.Sprintf("%s%dx", TestPrefix, os.Getpid())
	if stopped, _ := CleanupFRR(mine); len(stopped) > 0 {
		fmt.Fprintf(os.Stderr, "FRR instances left running: %v\n", stopped)
		code = 1
	}
	if left, _ := netns.List(mine); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "namespaces left behind: %v\n", left)
		Cleanup(mine)
		code = 1
	}
	return code
}
