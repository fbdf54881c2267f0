package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

// route is what an ISP router holds for one prefix.
type route struct {
	ASPath      string // "64500 64500"
	Communities string // "64502:80 ..."
}

// router is a real BGP implementation in an ISP namespace.
type router interface {
	// lookup returns the router's best route to prefix, if any.
	lookup(prefix string) (route, bool)
	// established reports whether the session to peer is up.
	established(peer string) bool
}

func frrAvailable(t testing.TB) {
	if err := lab.FRRAvailable(); err != nil {
		t.Skip(err)
	}
}

// frr runs FRR's zebra, bgpd (and bfdd when bfd) in namespace ns, with
// the bgpd configuration conf, as instance name (-N), through
// lab.StartFRRIn. Everything is stopped and removed when the test ends.
type frr struct {
	*lab.FRR
	t    testing.TB
	name string
}

func startFRR(t testing.TB, ns, name, conf string, daemons ...string) *frr {
	t.Helper()
	frrAvailable(t)
	f, err := lab.StartFRRIn(context.Background(), ns, name, conf, daemons...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Error(err)
		}
	})
	return &frr{FRR: f, t: t, name: name}
}

func (f *frr) vtysh(cmd string) ([]byte, error) {
	return f.Vtysh(context.Background(), "bgpd", cmd)
}

func (f *frr) lookup(prefix string) (route, bool) {
	fam := "ipv4"
	if strings.Contains(prefix, ":") {
		fam = "ipv6"
	}
	out, err := f.vtysh(fmt.Sprintf("show bgp %s unicast %s json", fam, prefix))
	if err != nil {
		return route{}, false
	}
	var r struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			Bestpath *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
		} `json:"paths"`
	}
	if json.Unmarshal(out, &r) != nil {
		return route{}, false
	}
	for _, p := range r.Paths {
		if p.Bestpath != nil && p.Bestpath.Overall {
			rt := route{ASPath: p.ASPath.String}
			if p.Community != nil {
				rt.Communities = p.Community.String
			}
			return rt, true
		}
	}
	return route{}, false
}

func (f *frr) established(peer string) bool {
	up, _ := f.Established(peer)
	return up
}

var _ router = (*frr)(nil)

// frrName is a unique FRR instance name for role in lab l:
// "<lab name>-<role>", whose creator pid cleanupStaleRouters can read.
func frrName(l *lab.Lab, role string) string { return l.FRRName(role) }

// stopPidFile terminates the process named in a pid file (SIGTERM, then
// SIGKILL after 2 s) and returns once it has exited.
func stopPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 1 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for range 100 {
		// Exited, or a zombie (no executable) that init has yet to
		// reap: the daemonised process is not our child to wait for.
		if _, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// birdRunDir holds the BIRD instances' pid files and sockets, one
// directory per instance named like the FRR ones.
const birdRunDir = "/run/mhbird"

// cleanupStaleRouters stops the BIRD instances of test runs that died
// without their cleanups (instance names start with the lab name, which
// records the creating pid), and removes their run directories; the FRR
// ones are labtest.RunTests's (lab.CleanupStaleFRR).
func cleanupStaleRouters() {
	dirs, _ := filepath.Glob(filepath.Join(birdRunDir, lab.TestPrefix+"*"))
	for _, d := range dirs {
		pid, ok := netns.Creator(lab.TestPrefix, filepath.Base(d))
		if !ok || netns.Alive(pid) {
			continue
		}
		pids, _ := filepath.Glob(filepath.Join(d, "*.pid"))
		for _, p := range pids {
			stopPidFile(p)
		}
		os.RemoveAll(d)
	}
}
