package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
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
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		t.Skip("FRR is not installed (apt-get install frr)")
	}
}

// frr runs FRR's zebra, bgpd (and bfdd when bfd) in namespace ns, with
// the bgpd configuration conf, as instance name (-N). Everything is
// stopped and removed when the test ends.
type frr struct {
	t    testing.TB
	name string
}

func startFRR(t testing.TB, ns, name, conf string, daemons ...string) *frr {
	t.Helper()
	frrAvailable(t)
	dir, err := os.MkdirTemp("", "mhfrr")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	run := filepath.Join("/var/run/frr", name)
	os.MkdirAll(run, 0o755)
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(run, uid, gid)
		os.Chown(dir, uid, gid)
	}
	f := &frr{t: t, name: name}
	var pids []string
	t.Cleanup(func() {
		for _, p := range pids {
			stopPidFile(p)
		}
		os.RemoveAll(dir)
		os.RemoveAll(run)
	})
	for _, d := range append([]string{"zebra"}, daemons...) {
		c := "hostname " + name + "\n"
		if d == "bgpd" {
			c += conf
		}
		cf := filepath.Join(dir, d+".conf")
		if err := os.WriteFile(cf, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		pid := filepath.Join(run, d+".pid")   // found by cleanupStaleRouters after a crash
		pids = append([]string{pid}, pids...) // stop in reverse order
		args := []string{"netns", "exec", ns, "/usr/lib/frr/" + d, "-d", "-N", name, "-f", cf, "-i", pid}
		if d == "zebra" {
			args = append(args, "-z", filepath.Join(run, "zserv.api"))
		} else {
			args = append(args, "-z", filepath.Join(run, "zserv.api"))
		}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("start %s: %v: %s", d, err, out)
		}
	}
	return f
}

func (f *frr) vtysh(cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "vtysh", "-N", f.name, "-d", "bgpd", "-c", cmd).Output()
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
	out, err := f.vtysh("show bgp neighbors " + peer + " json")
	if err != nil {
		return false
	}
	var r map[string]struct {
		State string `json:"bgpState"`
	}
	json.Unmarshal(out, &r)
	return r[peer].State == "Established"
}

var _ router = (*frr)(nil)

// frrName is a unique FRR instance name for role in lab l.
func frrName(l *lab.Lab, role string) string { return strings.ReplaceAll(l.Name, ".", "") + role }

func execCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).Output()
}

// stopPidFile terminates the process named in a pid file (SIGTERM, then
// SIGKILL after 2 s).
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
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// birdRunDir holds the BIRD instances' pid files and sockets, one
// directory per instance named like the FRR ones.
const birdRunDir = "/run/mhbird"

// cleanupStaleRouters stops the FRR and BIRD instances of test runs that
// died without their cleanups (instance names start with the lab name,
// which records the creating pid), and removes their run directories.
func cleanupStaleRouters() {
	for _, base := range []string{"/var/run/frr", birdRunDir} {
		dirs, _ := filepath.Glob(filepath.Join(base, lab.TestPrefix+"*"))
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
}
