package mptcp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

const twoLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
`

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func links(s1, s2 monitor.State) []Link {
	return []Link{
		{Name: "isp1", IfIndex: 3, Addr4: netip.MustParseAddr("198.51.100.2"), Addr6: netip.MustParseAddr("2001:db8:1::2"), State: s1},
		{Name: "isp2", IfIndex: 4, Addr4: netip.MustParseAddr("198.51.100.18"), State: s2},
	}
}

// TestSetGolden walks one path manager through link states and checks
// the kernel table after each step, and that a repeated Set changes
// nothing.
func TestSetGolden(t *testing.T) {
	cfg := parse(t, twoLinks+"mptcp: {}\n")
	operator := Endpoint{ID: 1, Addr: netip.MustParseAddr("192.0.2.1"), Flags: Signal}
	k := newFake(operator)
	m := NewManager(k)
	steps := []struct {
		name   string
		s1, s2 monitor.State
		admin2 monitor.Admin
		want   string
	}{
		{"start", monitor.Unknown, monitor.Unknown, 0, `
limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
`},
		{"both up", monitor.Up, monitor.Up, 0, `
limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
198.51.100.2 id 100 subflow ifindex 3
2001:db8:1::2 id 101 subflow ifindex 3
198.51.100.18 id 102 subflow ifindex 4
`},
		{"isp1 degraded", monitor.Degraded, monitor.Up, 0, `
limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
198.51.100.2 id 100 subflow backup ifindex 3
2001:db8:1::2 id 101 subflow backup ifindex 3
198.51.100.18 id 102 subflow ifindex 4
`},
		{"isp1 down, isp2 drained", monitor.Down, monitor.Up, monitor.AdminDrain, `
limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
198.51.100.18 id 102 subflow backup ifindex 4
`},
		{"both up again", monitor.Up, monitor.Up, 0, `
limits subflows 4 add_addr_accepted 4
192.0.2.1 id 1 signal
198.51.100.2 id 100 subflow ifindex 3
2001:db8:1::2 id 101 subflow ifindex 3
198.51.100.18 id 102 subflow ifindex 4
`},
	}
	for _, s := range steps {
		ls := links(s.s1, s.s2)
		ls[1].Admin = s.admin2
		want := Desired(cfg, ls)
		if _, err := m.Set(want); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := show(k); got != strings.TrimPrefix(s.want, "\n") {
			t.Errorf("%s: kernel table\n%s\nwant\n%s", s.name, got, s.want)
		}
		calls := k.calls
		changes, err := m.Set(want)
		if err != nil || len(changes) > 0 || k.calls != calls {
			t.Errorf("%s: second Set changed %q (err %v)", s.name, changes, err)
		}
	}
	if _, err := m.Clear(); err != nil {
		t.Fatal(err)
	}
	if got := show(k); got != "limits subflows 4 add_addr_accepted 4\n192.0.2.1 id 1 signal\n" {
		t.Errorf("after Clear the operator's endpoint must stay alone:\n%s", got)
	}
}

// TestSetOperatorAddress: an address the operator already made an
// endpoint of is skipped, not fought over.
func TestSetOperatorAddress(t *testing.T) {
	cfg := parse(t, twoLinks+"mptcp: {signal: true, subflows: 2, id_base: 10}\n")
	k := newFake(Endpoint{ID: 7, Addr: netip.MustParseAddr("198.51.100.18"), Flags: Subflow})
	m := NewManager(k)
	if _, err := m.Set(Desired(cfg, links(monitor.Up, monitor.Up))); err != nil {
		t.Fatal(err)
	}
	want := `limits subflows 2 add_addr_accepted 4
198.51.100.18 id 7 subflow
198.51.100.2 id 10 signal subflow ifindex 3
2001:db8:1::2 id 11 signal subflow ifindex 3
`
	if got := show(k); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestSetMovedAddress: a reload that reorders links or moves id_base
// re-creates the endpoints under their new IDs without a clash.
func TestSetMovedAddress(t *testing.T) {
	k := newFake()
	m := NewManager(k)
	cfg := parse(t, twoLinks+"mptcp: {}\n")
	if _, err := m.Set(Desired(cfg, links(monitor.Up, monitor.Up))); err != nil {
		t.Fatal(err)
	}
	cfg = parse(t, twoLinks+"mptcp: {links: [isp2, isp1], id_base: 200}\n")
	if _, err := m.Set(Desired(cfg, links(monitor.Up, monitor.Up))); err != nil {
		t.Fatal(err)
	}
	want := `limits subflows 4 add_addr_accepted 4
198.51.100.18 id 200 subflow ifindex 4
198.51.100.2 id 202 subflow ifindex 3
2001:db8:1::2 id 203 subflow ifindex 3
`
	if got := show(k); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"mptcp: {links: [isp3]}", `mptcp.links[0]: unknown link "isp3"`},
		{"mptcp: {subflows: 9}", "mptcp.subflows: must be 0..8"},
		{"mptcp: {id_base: 254}", "endpoint IDs 254..257 do not fit"},
		{"mptcp: {links: [isp1, isp1]}", "listed twice"},
	} {
		_, err := config.Parse("test.yaml", []byte(twoLinks+c.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.yaml, err, c.want)
		}
	}
}
