package mptcp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/mptcp"
	"github.com/multihome/multihome/netns"
)

// backend serves a fake monitor's links and a real path manager's
// status, as the daemon does.
type backend struct {
	*apitest.Fake
	c *mptcp.Controller
}

func (b *backend) MPTCPStatus() (mptcp.Status, bool) {
	st, _ := b.c.Status()
	return st, true
}

// TestAPIKernel: GET /api/v1/mptcp shows the endpoints the controller
// keeps in a real path manager (in a namespace with two veth uplinks),
// with their flags and links and the operator's endpoint beside them,
// and follows link health; at every step the answer is what `ip mptcp
// endpoint show` lists.
func TestAPIKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := netns.Unique(lab.TestPrefix, "mptcpapi")
	if err := netns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	sh := func(args ...string) string {
		t.Helper()
		out, err := netns.Command(context.Background(), ns, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "wan1", "type", "veth", "peer", "name", "wan1p"},
		{"ip", "link", "set", "wan1", "up"}, {"ip", "link", "set", "wan1p", "up"},
		{"ip", "addr", "add", "198.51.100.2/28", "dev", "wan1"},
		{"ip", "link", "add", "wan2", "type", "veth", "peer", "name", "wan2p"},
		{"ip", "link", "set", "wan2", "up"}, {"ip", "link", "set", "wan2p", "up"},
		{"ip", "addr", "add", "198.51.100.18/28", "dev", "wan2"},
		{"ip", "addr", "add", "2001:db8:2::2/64", "dev", "wan2", "nodad"},
		{"ip", "mptcp", "endpoint", "add", "192.0.2.1", "id", "1", "signal"},
	} {
		sh(c...)
	}
	cfg, err := config.Parse("test.yaml", []byte(`links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
mptcp: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := apitest.NewFake(
		monitor.Status{Link: "isp1", Interface: "wan1", State: monitor.Up, Health: monitor.Up},
		monitor.Status{Link: "isp2", Interface: "wan2", State: monitor.Up, Health: monitor.Up})
	c, err := mptcp.New(cfg, f, slog.New(slog.DiscardHandler), mptcp.WithNetns(ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	_, addr := apitest.Start(t, &backend{Fake: f, c: c}, api.Options{})
	cl, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	idx := func(name string) int {
		var i int
		netns.Do(ns, func() error {
			ifc, err := net.InterfaceByName(name)
			if err == nil {
				i = ifc.Index
			}
			return err
		})
		return i
	}
	wan1, wan2 := idx("wan1"), idx("wan2")

	// fromAPI and fromKernel render endpoints alike, one line each:
	// "ID ADDRESS FLAGS [dev IFINDEX]", sorted.
	fromAPI := func(st mptcp.Status) string {
		var lines []string
		for _, ep := range st.Endpoints {
			l := fmt.Sprintf("%d %s %s", ep.ID, ep.Address, strings.Join(ep.Flags, " "))
			if ep.IfIndex != 0 {
				l += fmt.Sprintf(" dev %d", ep.IfIndex)
			}
			lines = append(lines, l)
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	fromKernel := func() string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(sh("ip", "mptcp", "endpoint", "show")), "\n") {
			w := strings.Fields(l) // ADDR id N flags... [dev NAME]
			line := w[2] + " " + w[0]
			for k := 3; k < len(w); k++ {
				if w[k] == "dev" && k+1 < len(w) {
					line += fmt.Sprintf(" dev %d", idx(w[k+1]))
					break
				}
				line += " " + w[k]
			}
			lines = append(lines, line)
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	wait := func(what, want string) mptcp.Status {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := cl.MPTCP(context.Background())
			if err == nil && fromAPI(st) == want {
				if k := fromKernel(); k != want {
					t.Fatalf("%s: the API shows\n%s\nthe kernel\n%s", what, want, k)
				}
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: API %v\n%s\nwant\n%s\nkernel\n%s", what, err, fromAPI(st), want, fromKernel())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	links := func(st mptcp.Status) string {
		var s []string
		for _, l := range st.Links {
			s = append(s, fmt.Sprintf("%s %s %s %v %q", l.Link, l.State, l.Mode, l.Endpoints, l.Reason))
		}
		return strings.Join(s, "\n")
	}

	st := wait("both up", fmt.Sprintf("1 192.0.2.1 signal\n100 198.51.100.2 subflow dev %d\n102 198.51.100.18 subflow dev %d\n103 2001:db8:2::2 subflow dev %d", wan1, wan2, wan2))
	if got, want := links(st), "isp1 up subflow [100] \"\"\nisp2 up subflow [102 103] \"\""; got != want {
		t.Errorf("links\n%s\nwant\n%s", got, want)
	}
	for _, ep := range st.Endpoints {
		switch {
		case ep.ID == 1 && (!ep.Operator || ep.Link != ""):
			t.Errorf("operator's endpoint: %+v", ep)
		case ep.ID == 100 && (ep.Operator || ep.Link != "isp1" || ep.Interface != "wan1"):
			t.Errorf("isp1's endpoint: %+v", ep)
		case ep.ID >= 102 && (ep.Operator || ep.Link != "isp2" || ep.Interface != "wan2"):
			t.Errorf("isp2's endpoint: %+v", ep)
		}
	}
	// The JSON a browser gets: endpoint IDs are numbers, not base64.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(addr, "unix:"))
	}}}
	resp, err := hc.Get("http://multihome/api/v1/mptcp")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"endpoints": [`+"\n"+`        102,`) && !strings.Contains(string(raw), `"endpoints":[102,103]`) {
		t.Errorf("isp2's endpoint IDs are not a JSON array of numbers:\n%s", raw)
	}
	if st.Limits != (mptcp.Limits{Subflows: 4, AddAddrAccepted: 4}) || st.Time.IsZero() || st.Error != "" {
		t.Errorf("limits %+v, time %v, error %q", st.Limits, st.Time, st.Error)
	}

	f.Update("isp2", "loss 12%", func(s *monitor.Status) { s.State, s.Health = monitor.Degraded, monitor.Degraded })
	st = wait("isp2 degraded", fmt.Sprintf("1 192.0.2.1 signal\n100 198.51.100.2 subflow dev %d\n102 198.51.100.18 subflow backup dev %d\n103 2001:db8:2::2 subflow backup dev %d", wan1, wan2, wan2))
	if got, want := links(st), "isp1 up subflow [100] \"\"\nisp2 degraded backup [102 103] \"degraded\""; got != want {
		t.Errorf("links\n%s\nwant\n%s", got, want)
	}

	f.Update("isp1", "carrier lost", func(s *monitor.Status) { s.State, s.Health = monitor.Down, monitor.Down })
	st = wait("isp1 down", fmt.Sprintf("1 192.0.2.1 signal\n102 198.51.100.18 subflow backup dev %d\n103 2001:db8:2::2 subflow backup dev %d", wan2, wan2))
	if got, want := links(st), "isp1 down none [] \"link down\"\nisp2 degraded backup [102 103] \"degraded\""; got != want {
		t.Errorf("links\n%s\nwant\n%s", got, want)
	}
}
