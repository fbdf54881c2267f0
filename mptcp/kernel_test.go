package mptcp

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// kernelNS makes a namespace for a kernel-tier test and opens the path
// manager inside it; both go when the test ends.
func kernelNS(t *testing.T) (string, *Conn) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := netns.Unique(lab.TestPrefix, "mptcp")
	if err := netns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	var c *Conn
	err := netns.Do(ns, func() (err error) { c, err = Dial(); return err })
	if err != nil {
		t.Skipf("no MPTCP here: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return ns, c
}

func ipShow(t *testing.T, ns string, what ...string) string {
	t.Helper()
	out, err := netns.Command(context.Background(), ns, append([]string{"ip", "mptcp"}, what...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip mptcp %v: %v\n%s", what, err, out)
	}
	return string(out)
}

// TestKernelSet drives the real path manager of a namespace through the
// golden test's steps and reads the result back both through our own
// dump and through iproute2, with an operator's endpoint alongside.
func TestKernelSet(t *testing.T) {
	ns, c := kernelNS(t)
	if out, err := netns.Command(context.Background(), ns, "ip", "mptcp", "endpoint", "add", "192.0.2.1", "id", "1", "signal").CombinedOutput(); err != nil {
		t.Fatalf("operator endpoint: %v\n%s", err, out)
	}
	cfg := parse(t, twoLinks+"mptcp: {}\n")
	m := NewManager(c)
	ls := func(s1, s2 monitor.State) []Link {
		l := links(s1, s2)
		l[0].IfIndex, l[1].IfIndex = 1, 1 // lo: the only interface there is
		return l
	}
	if _, err := m.Set(Desired(cfg, ls(monitor.Up, monitor.Up))); err != nil {
		t.Fatal(err)
	}
	want := `limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
198.51.100.2 id 100 subflow ifindex 1
2001:db8:1::2 id 101 subflow ifindex 1
198.51.100.18 id 102 subflow ifindex 1
`
	if got := show(c); got != want {
		t.Errorf("dump\n%s\nwant\n%s", got, want)
	}
	ip := ipShow(t, ns, "endpoint", "show")
	for _, line := range []string{"198.51.100.2 id 100 subflow dev lo", "2001:db8:1::2 id 101 subflow dev lo", "198.51.100.18 id 102 subflow dev lo", "192.0.2.1 id 1 signal"} {
		if !strings.Contains(ip, line) {
			t.Errorf("ip mptcp endpoint show lacks %q:\n%s", line, ip)
		}
	}
	if lim := ipShow(t, ns, "limits", "show"); !strings.Contains(lim, "add_addr_accepted 4 subflows 4") {
		t.Errorf("ip mptcp limits: %s", lim)
	}
	if ch, err := m.Set(Desired(cfg, ls(monitor.Up, monitor.Up))); err != nil || len(ch) > 0 {
		t.Errorf("second Set: %q %v", ch, err)
	}

	if _, err := m.Set(Desired(cfg, ls(monitor.Degraded, monitor.Down))); err != nil {
		t.Fatal(err)
	}
	ip = ipShow(t, ns, "endpoint", "show")
	if !strings.Contains(ip, "198.51.100.2 id 100 subflow backup dev lo") || strings.Contains(ip, "198.51.100.18") {
		t.Errorf("isp1 degraded, isp2 down:\n%s", ip)
	}
	if _, err := m.Clear(); err != nil {
		t.Fatal(err)
	}
	if ip = ipShow(t, ns, "endpoint", "show"); strings.TrimSpace(ip) != "192.0.2.1 id 1 signal" {
		t.Errorf("after Clear:\n%s", ip)
	}
}
