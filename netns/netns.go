// Package netns owns creating, entering and removing named network
// namespaces: the ones `ip netns` lists, bind-mounted under /run/netns.
//
// # Goroutines and threads
//
// A network namespace belongs to an OS thread, not to a process, and the Go
// scheduler moves goroutines between threads. Code that must run inside a
// namespace therefore runs through [Do]: Do starts a fresh goroutine, locks
// it to its OS thread with runtime.LockOSThread, switches that thread into
// the namespace, runs the function, and switches back. If switching back
// fails, the goroutine exits still locked, and the Go runtime then destroys
// the thread instead of reusing it in the wrong namespace. The calling
// goroutine never changes namespace.
//
// Sockets keep the namespace they were created in. A listener or connection
// opened inside Do can be used from any goroutine afterwards (see [Listen],
// [ListenPacket] and [DialContext]). The function given to Do must not start
// goroutines that expect to run in the namespace: they run wherever the
// scheduler puts them, normally in the process's own namespace. Child
// processes started from inside Do inherit the namespace of the thread that
// forks them; [Command] is the simpler way to run a program in a namespace.
//
// # Names
//
// [Unique] makes names of the form
//
//	<prefix><pid>x<seq>[-<role>]
//
// for example "mhlt4242x3-gw": prefix is a short constant naming the user
// ("mhlt" for lab tests), pid is the creating process, seq a counter in that
// process. Because the creator's pid is part of the name, [Stale] can tell
// the namespaces of crashed processes from those of running ones, and test
// binaries sweep their leftovers at start without disturbing anyone else.
package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted, as with `ip netns`.
const RunDir = "/run/netns"

// MaxUniqueLen is the longest name [Unique] returns.
const MaxUniqueLen = 30

// Path returns the file a named namespace is mounted on.
func Path(name string) string { return filepath.Join(RunDir, name) }

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

// Add creates the named network namespace NAME, like `ip netns add NAME`.
// It fails if the name is taken. The new namespace has only a down loopback
// interface. The calling goroutine's thread never enters it.
func Add(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := prepareRunDir(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("netns add %s: %w", name, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		mountErr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime kills it when this
			// goroutine returns, so no other goroutine inherits the
			// namespace.
			errc <- errors.Join(mountErr, fmt.Errorf("switch back to original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount: %w", mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return fmt.Errorf("netns add %s: %w", name, err)
	}
	return nil
}

// prepareRunDir creates RunDir and makes it a shared mount point, exactly
// as iproute2 does, so that unmounting a namespace in one mount namespace
// unmounts it everywhere.
func prepareRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", RunDir, err)
	}
	madeMount := false
	for {
		err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || madeMount {
			return fmt.Errorf("make %s shared: %w", RunDir, err)
		}
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", RunDir, err)
		}
		madeMount = true
	}
}

// Delete removes the named namespace, like `ip netns delete NAME`. A
// missing namespace is not an error. Delete kills nothing: processes and
// sockets still inside keep the namespace alive, nameless, until they end.
func Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("netns delete %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netns delete %s: %w", name, err)
	}
	return nil
}

// Exists reports whether the named namespace exists (its file is a mounted
// namespace).
func Exists(name string) bool {
	if checkName(name) != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// List returns the sorted names of the namespaces in RunDir that start with
// prefix ("" lists all).
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns list: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Do runs fn on a locked OS thread switched into the named namespace and
// switches the thread back afterwards. It returns fn's error. A panic in fn
// is re-raised in the caller after the thread has been switched back.
func Do(name string, fn func() error) error {
	target, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer unix.Close(target)

	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns %s: open current namespace: %w", name, err)}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns %s: enter: %w", name, err)}
			return
		}
		var res result
		func() {
			defer func() {
				if p := recover(); p != nil {
					res.panicked, res.panicVal = true, p
				}
			}()
			res.err = fn()
		}()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread dies with this goroutine.
			res.err = errors.Join(res.err, fmt.Errorf("netns %s: switch back: %w", name, err))
			done <- res
			return
		}
		runtime.UnlockOSThread()
		done <- res
	}()
	res := <-done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// Handle returns a netlink handle whose sockets live in the named
// namespace. Close it when done.
func Handle(name string) (*netlink.Handle, error) {
	h, ns, err := Open(name)
	if err != nil {
		return nil, err
	}
	ns.Close()
	return h, nil
}

// Open returns a netlink handle whose sockets live in the named
// namespace, and the namespace's own handle (for what opens sockets
// later, such as netlink subscriptions). Close both when done.
func Open(name string) (*netlink.Handle, vnetns.NsHandle, error) {
	ns, err := vnetns.GetFromPath(Path(name))
	if err != nil {
		return nil, vnetns.None(), fmt.Errorf("netns %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, vnetns.None(), fmt.Errorf("netns %s: netlink handle: %w", name, err)
	}
	return h, ns, nil
}

// Command returns a command that runs argv inside the named namespace:
// `ip netns exec NAME argv...`. ip execs argv, so the process id is argv's.
func Command(ctx context.Context, name string, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", name}, argv...)...)
}

// Listen opens a listener inside the named namespace with lc (nil means a
// zero ListenConfig). The listener stays in the namespace.
func Listen(ctx context.Context, name string, lc *net.ListenConfig, network, address string) (net.Listener, error) {
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	var ln net.Listener
	err := Do(name, func() error {
		var err error
		ln, err = lc.Listen(ctx, network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet listener inside the named namespace.
func ListenPacket(ctx context.Context, name string, lc *net.ListenConfig, network, address string) (net.PacketConn, error) {
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	var pc net.PacketConn
	err := Do(name, func() error {
		var err error
		pc, err = lc.ListenPacket(ctx, network, address)
		return err
	})
	return pc, err
}

// DialContext dials address from inside the named namespace with d (nil
// means a zero Dialer). address must hold an IP literal: with a host name
// the resolver and a dual-stack race may open sockets on other goroutines,
// outside the namespace.
func DialContext(ctx context.Context, name string, d *net.Dialer, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var c net.Conn
	err := Do(name, func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

var seq atomic.Uint64

// Unique returns a namespace name that no other live process uses:
// prefix, this process's pid, "x", a per-process counter, and "-role" when
// role is not empty. Names that exist already are skipped. Unique panics if
// the name would be longer than MaxUniqueLen: keep prefixes to about 6
// characters and roles to about 10.
func Unique(prefix, role string) string {
	for {
		name := prefix + strconv.Itoa(os.Getpid()) + "x" + strconv.FormatUint(seq.Add(1), 10)
		if role != "" {
			name += "-" + role
		}
		if len(name) > MaxUniqueLen {
			panic(fmt.Sprintf("netns: name %q longer than %d characters", name, MaxUniqueLen))
		}
		if !Exists(name) {
			return name
		}
	}
}

// Creator returns the pid encoded in a name made by [Unique] with prefix.
func Creator(prefix, name string) (pid int, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return 0, false
	}
	digits, rest, found := strings.Cut(rest, "x")
	if !found || digits == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != digits {
		return 0, false
	}
	counter, _, _ := strings.Cut(rest, "-")
	if _, err := strconv.ParseUint(counter, 10, 64); err != nil {
		return 0, false
	}
	return pid, true
}

// Alive reports whether a process with this pid exists.
func Alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Stale returns the namespaces named by [Unique] with prefix whose creating
// process is gone: leftovers of crashed runs, safe to delete.
func Stale(prefix string) ([]string, error) {
	names, err := List(prefix)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, n := range names {
		if pid, ok := Creator(prefix, n); ok && !Alive(pid) {
			stale = append(stale, n)
		}
	}
	return stale, nil
}
