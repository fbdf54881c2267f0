package outbound

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

func TestDecide(t *testing.T) {
	links := []config.Link{
		{Name: "a", Weight: 4, Priority: 1},
		{Name: "b", Weight: 2, Priority: 1},
		{Name: "c", Weight: 0, Priority: 2},
	}
	view := func(mod map[string]func(*monitor.Status)) []linkView {
		var v []linkView
		for i, l := range links {
			s := monitor.Status{Link: l.Name, State: monitor.Up}
			if f := mod[l.Name]; f != nil {
				f(&s)
			}
			v = append(v, linkView{idx: i, cfg: l, st: s})
		}
		return v
	}
	byName := map[string]int{"a": 0, "b": 1, "c": 2}
	all := []string{"a", "b", "c"}
	util := func(u float64, sat bool) func(*monitor.Status) {
		return func(s *monitor.Status) { s.UtilUp, s.Saturated = u, sat }
	}
	dn := func(s *monitor.Status) { s.State = monitor.Down }
	for _, tc := range []struct {
		name string
		pol  config.OutboundPolicy
		mod  map[string]func(*monitor.Status)
		want string
	}{
		{"weighted gcd", config.OutboundPolicy{Type: config.PolicyWeighted}, nil, "[{0 2} {1 1}]"},
		{"weight 0 only when alone", config.OutboundPolicy{Type: config.PolicyWeighted}, map[string]func(*monitor.Status){"a": dn, "b": dn}, "[{2 1}]"},
		{"failover tier", config.OutboundPolicy{Type: config.PolicyFailover}, map[string]func(*monitor.Status){"a": dn}, "[{1 1}]"},
		{"failover next tier", config.OutboundPolicy{Type: config.PolicyFailover}, map[string]func(*monitor.Status){"a": dn, "b": dn}, "[{2 1}]"},
		{"drain takes no new flows", config.OutboundPolicy{Type: config.PolicyWeighted}, map[string]func(*monitor.Status){"a": func(s *monitor.Status) { s.Admin = monitor.AdminDrain }}, "[{1 1}]"},
		{"spillover", config.OutboundPolicy{Type: config.PolicyWeighted, Spillover: 0.8}, map[string]func(*monitor.Status){"a": util(0.85, false)}, "[{1 1}]"},
		{"spillover all full", config.OutboundPolicy{Type: config.PolicyWeighted, Spillover: 0.8}, map[string]func(*monitor.Status){"a": util(0.85, false), "b": util(0.9, false), "c": dn}, "[{0 2} {1 1}]"},
		{"least-loaded by spare", config.OutboundPolicy{Type: config.PolicyLeastLoaded}, map[string]func(*monitor.Status){"a": util(0.75, false), "b": util(0, false)}, "[{0 1} {1 2}]"},
		{"least-loaded skips saturated", config.OutboundPolicy{Type: config.PolicyLeastLoaded}, map[string]func(*monitor.Status){"a": util(0.95, true)}, "[{1 1}]"},
		{"nothing healthy", config.OutboundPolicy{Type: config.PolicyWeighted}, map[string]func(*monitor.Status){"a": dn, "b": dn, "c": dn}, "[]"},
	} {
		tc.pol.Links = all
		c := decide(tc.pol, view(tc.mod), byName)
		if got := fmt.Sprint(c.members); got != tc.want {
			t.Errorf("%s: members %s, want %s (%s)", tc.name, got, tc.want, c.why)
		}
	}
}

// With an HA virtual address on a shared uplink, forwarded flows leave
// from it and the node's own traffic (probes) keeps its own address.
func TestRenderHASNAT(t *testing.T) {
	cfg := &config.Config{Links: []config.Link{
		{Name: "isp1", Interface: "wan1", Gateway4: netip.MustParseAddr("198.51.100.1"), Address4: netip.MustParseAddr("198.51.100.2"), Weight: 1, Priority: 1},
		{Name: "isp2", Interface: "wan2", Gateway4: netip.MustParseAddr("198.51.100.17"), Address4: netip.MustParseAddr("198.51.100.18"), Weight: 1, Priority: 1},
	}, HA: &config.HA{Instances: []config.VRRPInstance{
		{Link: "isp1", VirtualAddresses: []netip.Prefix{netip.MustParsePrefix("198.51.100.5/28")}},
	}}}
	snat := true
	cfg.Outbound.SNAT = &snat
	cfg.Outbound.MarkMask, cfg.Outbound.TableBase, cfg.Outbound.RulePriority = 0xff0000, 100, 10000
	out, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`oifname "wan1" ip saddr != 198.51.100.2 snat ip to 198.51.100.5`,
		`oifname "wan2" snat ip to 198.51.100.18`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
