package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testPrefix names every namespace these tests create.
const testPrefix = "mhnt"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		// Sweep namespaces left by earlier runs that crashed.
		stale, _ := Stale(testPrefix)
		for _, n := range stale {
			Delete(n)
		}
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// tempNS creates a namespace removed when the test ends, even on failure.
func tempNS(t *testing.T, role string) string {
	t.Helper()
	name := Unique(testPrefix, role)
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

func selfNS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nsIno(t *testing.T, name string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(Path(name), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestUniqueAndCreator(t *testing.T) {
	a, b := Unique("mhq", "gw"), Unique("mhq", "gw")
	if a == b {
		t.Fatalf("Unique returned %q twice", a)
	}
	want := fmt.Sprintf("mhq%dx", os.Getpid())
	if !strings.HasPrefix(a, want) || !strings.HasSuffix(a, "-gw") || len(a) > MaxUniqueLen {
		t.Errorf("Unique = %q, want %s<seq>-gw of at most %d characters", a, want, MaxUniqueLen)
	}
	if pid, ok := Creator("mhq", a); !ok || pid != os.Getpid() {
		t.Errorf("Creator(%q) = %d, %v", a, pid, ok)
	}
	if n := Unique("mhq", ""); strings.Contains(n, "-") {
		t.Errorf("Unique without role = %q", n)
	}
	for _, bad := range []string{"mhq", "mhqx1", "mhq12", "mhq12x", "mhq012x1", "mhq12xa-gw", "other12x1", "mhqa12x1"} {
		if pid, ok := Creator("mhq", bad); ok {
			t.Errorf("Creator(%q) = %d, true; want not ok", bad, pid)
		}
	}
	for _, good := range []string{"mhq12x1", "mhq12x1-gw", "mhq12x7-isp1"} {
		if pid, ok := Creator("mhq", good); !ok || pid != 12 {
			t.Errorf("Creator(%q) = %d, %v; want 12, true", good, pid, ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Unique with a long role did not panic")
		}
	}()
	Unique("mhq", strings.Repeat("r", 30))
}

func TestAddDoDelete(t *testing.T) {
	needRoot(t)
	before := selfNS(t)
	name := tempNS(t, "a")

	if !Exists(name) {
		t.Fatalf("Exists(%q) = false after Add", name)
	}
	if err := Add(name); err == nil {
		t.Errorf("second Add(%q) succeeded", name)
	}
	names, err := List(testPrefix)
	if err != nil || !slices.Contains(names, name) {
		t.Errorf("List = %v, %v; want it to contain %q", names, err, name)
	}

	// Inside: a fresh namespace with only lo, and the thread really is there.
	var inside uint64
	err = Do(name, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" {
			return fmt.Errorf("links in new namespace: %v", links)
		}
		inside = selfNS(t)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != nsIno(t, name) {
		t.Errorf("Do ran in namespace %d, want %d", inside, nsIno(t, name))
	}
	if got := selfNS(t); got != before {
		t.Errorf("caller's namespace changed: %d, want %d", got, before)
	}

	// Errors and panics come back to the caller.
	sentinel := errors.New("sentinel")
	if err := Do(name, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do error = %v, want sentinel", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		Do(name, func() error { panic("boom") })
	}()
	if err := Do(name+"-missing", func() error { return nil }); err == nil {
		t.Error("Do in a missing namespace succeeded")
	}

	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if Exists(name) {
		t.Errorf("Exists(%q) after Delete", name)
	}
	if err := Delete(name); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestHandleCommandSockets(t *testing.T) {
	needRoot(t)
	name := tempNS(t, "b")
	rootLinks := linkNames(t, nil)

	h, err := Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "mhtest0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(t, h); !slices.Equal(got, []string{"lo", "mhtest0"}) {
		t.Errorf("links in namespace = %v", got)
	}
	if got := linkNames(t, nil); !slices.Equal(got, rootLinks) {
		t.Errorf("root links changed: %v, want %v", got, rootLinks)
	}

	out, err := Command(context.Background(), name, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "mhtest0") {
		t.Errorf("ip link inside namespace: %s", out)
	}

	// A listener opened inside stays inside: reachable from the namespace,
	// served from an ordinary goroutine.
	ln, err := Listen(context.Background(), name, nil, "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello")
		c.Close()
	}()
	c, err := DialContext(context.Background(), name, nil, "tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello" {
		t.Errorf("read %q through the namespace", got)
	}
	// Child processes forked inside Do inherit the namespace.
	err = Do(name, func() error {
		out, err := exec.Command("ip", "-o", "link", "show", "mhtest0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Errorf("exec inside Do: %v", err)
	}
}

func TestStale(t *testing.T) {
	needRoot(t)
	// A pid that was just used and is gone now.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if Alive(dead) {
		t.Skipf("pid %d reused already", dead)
	}
	stale := fmt.Sprintf("%s%dx1-gw", testPrefix, dead)
	if err := Add(stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(stale) })
	live := tempNS(t, "c")

	got, err := Stale(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, stale) || slices.Contains(got, live) {
		t.Errorf("Stale = %v, want %q and not %q", got, stale, live)
	}
}

func linkNames(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	var links []netlink.Link
	var err error
	if h == nil {
		links, err = netlink.LinkList()
	} else {
		links, err = h.LinkList()
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}
