package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/multihome/multihome/netns"
)

// FRRRunDir holds one directory per FRR instance started by [Lab.StartFRR]:
// its configuration files, pid files and zebra's API socket.
const FRRRunDir = "/var/run/frr"

const frrBin = "/usr/lib/frr"

// FRRAvailable reports why FRR cannot be used here (nil if it can): its
// daemons and vtysh come from Debian's frr package.
func FRRAvailable() error {
	for _, p := range []string{frrBin + "/zebra", frrBin + "/bgpd"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("FRR is not installed (%s missing; apt-get install frr)", p)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		return fmt.Errorf("FRR is not installed (no vtysh; apt-get install frr): %w", err)
	}
	return nil
}

// FRR is one FRR instance (zebra, bgpd and any other daemons) running in a
// namespace of the lab as that role's router, e.g. an ISP's. It is stopped
// by [FRR.Stop] or, at the latest, by [Lab.Down].
type FRR struct {
	// Name is the instance name (FRR's -N): "<lab name>-<role>", with
	// dots (which FRR refuses) turned into "_".
	Name string
	Role string // "" when started by StartFRRIn

	dir  string
	pids []string // pid files, in start order
}

// FRRName is the instance name of role's FRR in lab l.
func (l *Lab) FRRName(role string) string {
	return strings.ReplaceAll(l.Name, ".", "_") + "-" + role
}

// StartFRR starts zebra and the given daemons (bgpd when none are given)
// in the namespace of role, as instance l.FRRName(role); see [StartFRRIn].
// [Lab.Down] stops it at the latest.
func (l *Lab) StartFRR(ctx context.Context, role, bgpdConf string, daemons ...string) (*FRR, error) {
	if !l.hasRole(role) {
		return nil, fmt.Errorf("lab %s: start FRR: no role %q", l.Name, role)
	}
	f, err := StartFRRIn(ctx, l.NS(role), l.FRRName(role), bgpdConf, daemons...)
	if err != nil {
		return nil, err
	}
	f.Role = role
	l.mu.Lock()
	l.frrs = append(l.frrs, f)
	l.mu.Unlock()
	return f, nil
}

// StartFRRIn starts zebra and the given daemons (bgpd when none are given)
// in namespace ns as FRR instance name (-N; no dots or slashes). bgpdConf
// is bgpd's configuration (FRR syntax, e.g. "router bgp 64501 ..."); the
// other daemons get only a hostname. Configuration, pid files and sockets
// live in FRRRunDir/name, owned by user frr. It returns once every daemon
// has written its pid file and answers vtysh; on error it stops what
// it started. The caller stops the instance ([FRR.Stop]).
func StartFRRIn(ctx context.Context, ns, name, bgpdConf string, daemons ...string) (_ *FRR, err error) {
	if err := FRRAvailable(); err != nil {
		return nil, err
	}
	if name == "" || strings.ContainsAny(name, "./") {
		return nil, fmt.Errorf("start FRR: instance name %q: want no dots or slashes", name)
	}
	if len(daemons) == 0 {
		daemons = []string{"bgpd"}
	}
	f := &FRR{Name: name, dir: filepath.Join(FRRRunDir, name)}
	if _, err := os.Stat(f.dir); err == nil {
		return nil, fmt.Errorf("start FRR %s: %s exists already (another instance?)", f.Name, f.dir)
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("start FRR %s: %w", f.Name, err)
	}
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	uid, gid := -1, -1
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	if err := os.Chown(f.dir, uid, gid); err != nil {
		return nil, fmt.Errorf("start FRR %s: %w", f.Name, err)
	}
	zserv := filepath.Join(f.dir, "zserv.api")
	for _, d := range append([]string{"zebra"}, daemons...) {
		conf := "hostname " + f.Name + "\n"
		if d == "bgpd" {
			conf += bgpdConf
		}
		cf := filepath.Join(f.dir, d+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("start FRR %s: %w", f.Name, err)
		}
		os.Chown(cf, uid, gid)
		pid := filepath.Join(f.dir, d+".pid")
		f.pids = append(f.pids, pid)
		// -d: the daemon forks into the background inside the namespace;
		// the pid file is how it is found and stopped.
		out, err := netns.Command(ctx, ns, filepath.Join(frrBin, d), "-d", "-N", f.Name,
			"-f", cf, "-i", pid, "-z", zserv).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("start FRR %s: %s: %w: %s", f.Name, d, err, strings.TrimSpace(string(out)))
		}
		if _, err := readPid(pid); err != nil {
			return nil, fmt.Errorf("start FRR %s: %s: %w", f.Name, d, err)
		}
	}
	// Every daemon answers vtysh once it has read its configuration.
	deadline := time.Now().Add(10 * time.Second)
	for _, d := range append([]string{"zebra"}, daemons...) {
		for {
			_, err := f.Vtysh(ctx, d, "show running-config")
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("start FRR %s: %w", f.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return f, nil
}

func (l *Lab) hasRole(role string) bool {
	for _, r := range l.Roles() {
		if r == role {
			return true
		}
	}
	return false
}

// Stop terminates the instance's daemons (SIGTERM, SIGKILL after 2 s each)
// and removes its directory. It is idempotent.
func (f *FRR) Stop() error {
	return stopFRRDir(f.dir)
}

// Vtysh runs one vtysh command against daemon ("bgpd", "zebra", "bfdd")
// of the instance and returns its output.
func (f *FRR) Vtysh(ctx context.Context, daemon, command string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", "-N", f.Name, "-d", daemon, "-c", command).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return out, fmt.Errorf("vtysh -N %s -c %q: %w", f.Name, command, err)
	}
	return out, nil
}

// Configure applies conf (FRR configuration lines, as in a config file:
// indentation and "!" lines are ignored, mode commands such as "bfd" or
// "router bgp 64501" enter their mode) to daemon of the running instance
// through one vtysh call, e.g. bfdd's peers, which StartFRRIn does not
// configure.
func (f *FRR) Configure(ctx context.Context, daemon, conf string) error {
	args := []string{"-N", f.Name, "-d", daemon, "-c", "configure terminal"}
	for _, line := range strings.Split(conf, "\n") {
		if line = strings.TrimSpace(line); line != "" && line != "!" {
			args = append(args, "-c", line)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("configure %s of FRR %s: %w: %s", daemon, f.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Route returns the AS path ("64500 64500") of the router's best route to
// prefix (IPv4 or IPv6, exact match), and whether it has one.
func (f *FRR) Route(prefix string) (asPath string, ok bool, err error) {
	paths, err := f.paths(prefix)
	for _, p := range paths {
		if p.best {
			return p.asPath, true, nil
		}
	}
	return "", false, err
}

// BestPeer returns the neighbour the router's best path to prefix comes
// from ("" without one) and how many paths to prefix it holds.
func (f *FRR) BestPeer(prefix string) (peer string, paths int, err error) {
	ps, err := f.paths(prefix)
	for _, p := range ps {
		if p.best {
			peer = p.peer
		}
	}
	return peer, len(ps), err
}

// frrPath is one of FRR's paths to a prefix.
type frrPath struct {
	asPath, peer string
	best         bool
}

// paths returns the router's BGP paths to prefix (exact match).
func (f *FRR) paths(prefix string) ([]frrPath, error) {
	fam := "ipv4"
	if strings.Contains(prefix, ":") {
		fam = "ipv6"
	}
	out, err := f.Vtysh(context.Background(), "bgpd", fmt.Sprintf("show bgp %s unicast %s json", fam, prefix))
	if err != nil {
		return nil, err
	}
	return parseFRRPaths(out)
}

// parseFRRPaths reads the paths from the JSON of `show bgp ipv4 unicast
// PREFIX json`. FRR answers "{}" when it has no route to the prefix.
func parseFRRPaths(b []byte) ([]frrPath, error) {
	var r struct {
		Paths []struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
			Bestpath *struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("FRR route JSON: %w", err)
	}
	paths := make([]frrPath, 0, len(r.Paths))
	for _, p := range r.Paths {
		paths = append(paths, frrPath{asPath: p.ASPath.String, peer: p.Peer.PeerID, best: p.Bestpath != nil && p.Bestpath.Overall})
	}
	return paths, nil
}

// Established reports whether the router's BGP session to peer (an
// address) is established.
func (f *FRR) Established(peer string) (bool, error) {
	out, err := f.Vtysh(context.Background(), "bgpd", "show bgp neighbors "+peer+" json")
	if err != nil {
		return false, err
	}
	var r map[string]struct {
		State string `json:"bgpState"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return false, fmt.Errorf("FRR neighbour JSON: %w", err)
	}
	return r[peer].State == "Established", nil
}

// stopFRR stops every FRR instance of the lab, in parallel: those this
// process started and, for a lab loaded from its state file, those found
// in FRRRunDir under the lab's name.
func (l *Lab) stopFRR() error {
	l.mu.Lock()
	frrs := l.frrs
	l.frrs = nil
	l.mu.Unlock()
	dirs := map[string]bool{}
	for _, f := range frrs {
		dirs[f.dir] = true
	}
	found, _ := filepath.Glob(filepath.Join(FRRRunDir, strings.ReplaceAll(l.Name, ".", "_")+"-*"))
	for _, d := range found {
		dirs[d] = true
	}
	errs := make(chan error, len(dirs))
	for d := range dirs {
		go func() { errs <- stopFRRDir(d) }()
	}
	var all []error
	for range dirs {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// CleanupFRR stops every FRR instance whose name starts with prefix,
// whoever started it, and removes its directory: CleanupFRR(name+"-")
// for one lab (names with dots as FRRName writes them). It returns the
// instances removed.
func CleanupFRR(prefix string) ([]string, error) {
	if prefix == "" {
		return nil, errors.New("FRR cleanup: empty prefix")
	}
	dirs, err := filepath.Glob(filepath.Join(FRRRunDir, strings.ReplaceAll(prefix, ".", "_")+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range dirs {
		if err := stopFRRDir(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, filepath.Base(d))
	}
	return removed, errors.Join(errs...)
}

// CleanupStaleFRR stops the FRR instances of labs named with
// netns.Unique(prefix, "") whose creating process is gone, and removes
// their directories. It returns the instances removed.
func CleanupStaleFRR(prefix string) ([]string, error) {
	dirs, err := filepath.Glob(filepath.Join(FRRRunDir, prefix+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range dirs {
		pid, ok := netns.Creator(prefix, filepath.Base(d))
		if !ok || netns.Alive(pid) {
			continue
		}
		if err := stopFRRDir(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, filepath.Base(d))
	}
	return removed, errors.Join(errs...)
}

// stopFRRDir stops the daemons whose pid files are in dir and removes
// dir: first every daemon but zebra, then zebra (the others talk to it
// while they shut down; it removes its routes, which takes it ~2 s).
func stopFRRDir(dir string) error {
	pids, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	var first, last []string
	for _, p := range pids {
		if filepath.Base(p) == "zebra.pid" {
			last = append(last, p)
		} else {
			first = append(first, p)
		}
	}
	var errs []error
	for _, group := range [][]string{first, last} {
		if err := stopPidFiles(group); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop FRR %s: %w", filepath.Base(dir), err)
	}
	return nil
}

func readPid(path string) (int, error) {
	var b []byte
	var err error
	// A daemonised FRR daemon writes its pid file right after forking.
	for range 100 {
		if b, err = os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: %q", path, b)
	}
	return pid, nil
}

// stopPidFiles terminates the FRR daemons named in pid files: SIGTERM to
// all, then SIGKILL to those still running after 4 s.
func stopPidFiles(paths []string) error {
	var pids []int
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // never written, or removed with its daemon
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 || !isFRRProcess(pid) {
			continue // gone, and the pid maybe reused
		}
		syscall.Kill(pid, syscall.SIGTERM)
		pids = append(pids, pid)
	}
	for range 200 {
		pids = slices.DeleteFunc(pids, func(pid int) bool { return !isFRRProcess(pid) })
		if len(pids) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// isFRRProcess reports whether pid runs one of FRR's daemons.
func isFRRProcess(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasPrefix(exe, frrBin+"/")
}
