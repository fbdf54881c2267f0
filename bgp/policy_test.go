package bgp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

func testBGP(t *testing.T, onDown string) *config.Config {
	t.Helper()
	c, err := config.Parse("t.yaml", []byte(`
links:
  - {name: wan1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: wan2, interface: wan2, gateway4: 198.51.100.17}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25, "2001:db8:100::/48"]
  on_down: `+onDown+`
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, communities: ["64501:100"]}
    - {link: wan1, address: "2001:db8:1::1", asn: 64501}
    - {link: wan2, address: 198.51.100.17, asn: 64502, role: backup}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The decisions, rendered as text, for each link state.
func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		onDown string
		usable map[string]bool
		bfd    map[netip.Addr]bool
		want   string
	}{
		{"withdraw", map[string]bool{"wan1": true, "wan2": true}, nil, `
198.51.100.1 AS64501 via wan1: announced, communities 64501:100
2001:db8:1::1 AS64501 via wan1: announced
198.51.100.17 AS64502 via wan2: announced, prepend 3`},
		{"withdraw", map[string]bool{"wan2": true}, nil, `
198.51.100.1 AS64501 via wan1: withdrawn
2001:db8:1::1 AS64501 via wan1: withdrawn
198.51.100.17 AS64502 via wan2: announced, prepend 3`},
		{"prepend", map[string]bool{"wan1": true}, nil, `
198.51.100.1 AS64501 via wan1: announced, communities 64501:100
2001:db8:1::1 AS64501 via wan1: announced
198.51.100.17 AS64502 via wan2: announced, prepend 6`},
		{"withdraw", map[string]bool{"wan1": true, "wan2": true}, map[netip.Addr]bool{netip.MustParseAddr("198.51.100.1"): true}, `
198.51.100.1 AS64501 via wan1: withdrawn
2001:db8:1::1 AS64501 via wan1: announced
198.51.100.17 AS64502 via wan2: announced, prepend 3`},
	} {
		b := testBGP(t, tc.onDown).BGP
		got := strings.TrimSpace(render(b, decide(b, tc.usable, tc.bfd)))
		if got != strings.TrimSpace(tc.want) {
			t.Errorf("%s %v %v:\n%s\nwant\n%s", tc.onDown, tc.usable, tc.bfd, got, strings.TrimSpace(tc.want))
		}
	}
}

// The GoBGP policy: default reject both ways, one statement per
// neighbour and family, local routes accepted on import.
func TestPolicies(t *testing.T) {
	b := testBGP(t, "withdraw").BGP
	r := policies(b, decide(b, map[string]bool{"wan2": true}, nil))
	var st []string
	for _, s := range r.Policies[0].Statements {
		st = append(st, s.Name+" "+s.Actions.RouteAction.String())
	}
	want := "mh-nbr-0-v4 ROUTE_ACTION_REJECT,mh-nbr-1-v6 ROUTE_ACTION_REJECT,mh-nbr-2-v4 ROUTE_ACTION_ACCEPT"
	if got := strings.Join(st, ","); got != want {
		t.Errorf("statements %s\nwant %s", got, want)
	}
	if p := r.Policies[0].Statements[2].Actions.AsPrepend; p == nil || p.Asn != 64500 || p.Repeat != 3 {
		t.Errorf("backup prepend %v", p)
	}
	for _, a := range r.Assignments {
		if a.DefaultAction.String() != "ROUTE_ACTION_REJECT" {
			t.Errorf("%s default %s", a.Direction, a.DefaultAction)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	cfg := testBGP(t, "withdraw")
	s, err := New(cfg, &fakeSource{}, discard())
	if err != nil {
		t.Fatal(err)
	}
	s.peers[netip.MustParseAddr("198.51.100.1")] = &peerInfo{link: "wan1", asn: 64501, announced: true}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 5 {
		t.Errorf("only %d metric families", len(mfs))
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestUsable(t *testing.T) {
	b := &config.BGP{}
	deg := monitor.Status{State: monitor.Degraded}
	if !usable(b, deg) || usable(b, monitor.Status{State: monitor.Down, HoldDown: true}) || usable(b, monitor.Status{}) {
		t.Error("default: degraded usable, down (hold-down) and unknown not")
	}
	b.DegradedIsDown = true
	if usable(b, deg) || !usable(b, monitor.Status{State: monitor.Up}) {
		t.Error("degraded_is_down")
	}
}

// A drained link's neighbours are prepended (on_drain: prepend, the
// default) or withdrawn (on_drain: withdraw); other links are untouched,
// and a neighbour already withdrawn stays so.
func TestDrain(t *testing.T) {
	both := map[string]bool{"wan1": true, "wan2": true}
	drained := map[string]bool{"wan1": true}
	b := testBGP(t, "withdraw").BGP
	if b.OnDrain != config.BGPPrepend {
		t.Fatalf("on_drain default %q, want prepend", b.OnDrain)
	}
	got := strings.TrimSpace(render(b, drain(b, decide(b, both, nil), drained)))
	want := `198.51.100.1 AS64501 via wan1: announced, prepend 6, communities 64501:100
2001:db8:1::1 AS64501 via wan1: announced, prepend 6
198.51.100.17 AS64502 via wan2: announced, prepend 3`
	if got != want {
		t.Errorf("wan1 drained, on_drain prepend:\n%s\nwant\n%s", got, want)
	}
	b.OnDrain = config.BGPWithdraw
	got = strings.TrimSpace(render(b, drain(b, decide(b, both, nil), drained)))
	want = `198.51.100.1 AS64501 via wan1: withdrawn
2001:db8:1::1 AS64501 via wan1: withdrawn
198.51.100.17 AS64502 via wan2: announced, prepend 3`
	if got != want {
		t.Errorf("wan1 drained, on_drain withdraw:\n%s\nwant\n%s", got, want)
	}
}
