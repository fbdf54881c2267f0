package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps: the daemon's binary, which runs on production gateways, links
// neither the testing packages nor the lab and the demo (they are
// cmd/multihome-lab's). Like Tailscale's TestDeps, it reads `go list -deps`.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err) // no go toolchain where the test binary runs
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 || !slices.Contains(deps, "github.com/multihome/multihome/daemon") {
		t.Fatalf("go list -deps gave %d packages without the daemon: is the listing broken?\n%s", len(deps), out)
	}
	banned := []string{
		"testing",
		"net/http/httptest",
		"github.com/multihome/multihome/lab",
		"github.com/multihome/multihome/lab/labtest",
		"github.com/multihome/multihome/demo",
		"github.com/multihome/multihome/api/apitest",
	}
	for _, b := range banned {
		if slices.Contains(deps, b) {
			t.Errorf("cmd/multihome depends on %s", b)
		}
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "testing/") {
			t.Errorf("cmd/multihome depends on %s", d)
		}
	}
}
