package mptcp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/monitor"
)

// failAdd is a fake path manager that refuses to add one address.
type failAdd struct {
	*fakeKernel
	addr netip.Addr
}

func (f failAdd) Add(ep Endpoint) error {
	if ep.Addr == f.addr {
		return errors.New("no room")
	}
	return f.fakeKernel.Add(ep)
}

// TestStatusReasons: the status says why a link has fewer endpoints than
// wanted (an operator's endpoint holds the address, an add failed, hold
// down) from the manager's own table, with no second dump.
func TestStatusReasons(t *testing.T) {
	cfg := parse(t, twoLinks+"mptcp: {}\n")
	// The operator already has isp1's IPv6 address.
	k := failAdd{newFake(Endpoint{ID: 7, Addr: netip.MustParseAddr("2001:db8:1::2"), Flags: Signal}), netip.MustParseAddr("198.51.100.18")}
	m := NewManager(k)
	ls := links(monitor.Up, monitor.Up)
	want := Desired(cfg, ls)
	_, err := m.Set(want)
	if err == nil {
		t.Fatal("Set: no error from the refused add")
	}
	calls := k.calls
	st := statusOf(time.Now(), ls, map[string]string{"isp1": "wan1", "isp2": "wan2"}, want, m, err)
	if k.calls != calls {
		t.Errorf("statusOf made %d calls to the path manager", k.calls-calls)
	}
	var eps []string
	for _, ep := range st.Endpoints {
		eps = append(eps, fmt.Sprintf("%d %s %v %s %v", ep.ID, ep.Address, ep.Flags, ep.Link, ep.Operator))
	}
	if got, want := strings.Join(eps, "\n"), "7 2001:db8:1::2 [signal]  true\n100 198.51.100.2 [subflow] isp1 false"; got != want {
		t.Errorf("endpoints\n%s\nwant\n%s", got, want)
	}
	var lines []string
	for _, l := range st.Links {
		lines = append(lines, fmt.Sprintf("%s %s %v %s", l.Link, l.Mode, l.Endpoints, l.Reason))
	}
	if got, want := strings.Join(lines, "\n"), "isp1 subflow [100] 2001:db8:1::2 held by the operator's endpoint 7\n"+
		"isp2 none [] 198.51.100.18 not in the kernel (see error)"; got != want {
		t.Errorf("links\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(st.Error, "no room") {
		t.Errorf("error %q", st.Error)
	}

	ls[1].State, ls[1].HoldDown = monitor.Down, true
	want = Desired(cfg, ls)
	_, err = m.Set(want)
	st = statusOf(time.Now(), ls, nil, want, m, err)
	if l := st.Links[1]; l.Mode != "none" || l.Reason != "recovered, in hold-down" || st.Error != "" {
		t.Errorf("isp2 in hold-down: %+v, error %q", l, st.Error)
	}
}
