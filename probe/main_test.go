package probe

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

const isolatedEnv = "MULTIHOME_PROBE_TEST_ISOLATED"

// TestMain runs the tests, as root, inside a network namespace of their
// own (unshare --net, loopback up): the loopback servers of the unit tests
// then live in a namespace the test made, like everything the lab tests
// do. Without root they run on the loopback interface as they are.
func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && os.Getenv(isolatedEnv) == "" {
		unshare, err1 := exec.LookPath("unshare")
		exe, err2 := os.Executable()
		if err1 == nil && err2 == nil {
			args := append([]string{"unshare", "--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, exe}, os.Args[1:]...)
			err := syscall.Exec(unshare, args, append(os.Environ(), isolatedEnv+"=1"))
			fmt.Fprintf(os.Stderr, "cannot isolate the tests in a network namespace: %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}
