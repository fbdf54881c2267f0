package outbound

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/multihome/multihome/monitor"
)

// TestRenderSplitGolden renders gateway A of a split-uplinks pair (isp1
// its own, isp2 the partner's over the transit link) as master and as
// standby, and with its own uplink down.
func TestRenderSplitGolden(t *testing.T) {
	cfg := loadConfig(t, filepath.Join("testdata", "split.yaml"))
	for _, tc := range []struct {
		name    string
		standby bool
		mod     map[string]func(*monitor.Status)
	}{
		{name: "split-master"},
		{name: "split-standby", standby: true},
		{name: "split-standby-isp1-down", standby: true, mod: map[string]func(*monitor.Status){"isp1": down}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			render := Render
			if tc.standby {
				render = RenderStandby
			}
			got, err := render(cfg, states(cfg, tc.mod))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, got)
			nftCheck(t, got)
			// What the golden files must show, whatever else changes.
			for _, want := range []string{
				`iifname "sync0" goto from_partner`,
				`iifname "sync0" oifname "sync0" drop`,
				"ip -4 rule add pref 31000 not fwmark 0xfd0000/0xff0000 lookup main suppress_prefixlength 0",
				"ip -4 rule add pref 31002 fwmark 0xfd0000/0xff0000 lookup 31001",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("missing %q", want)
				}
			}
			if strings.Contains(got, `oifname "sync0" snat`) || strings.Contains(got, `oifname "sync0" meta nfproto ipv4 masquerade`) {
				t.Error("the transit link is source-NATed")
			}
			if strings.Contains(got, `"sync0" : goto save1 }`+" comment \"inbound") || strings.Contains(got, `iifname vmap { "wan1" : goto save0, "sync0"`) {
				t.Error("flows from the partner are treated as inbound flows of the transit link")
			}
			if back := strings.Contains(got, "ct direction reply"); back != tc.standby {
				t.Errorf("replies sent back to the partner: %v, want %v (standby)", back, tc.standby)
			}
		})
	}
}

// TestStandbyText: the dry run shows the standby's return chain of a
// split pair, and nothing for a config without a transit link.
func TestStandbyText(t *testing.T) {
	if got := StandbyText(loadConfig(t, filepath.Join("testdata", "split.yaml"))); !strings.Contains(got, "chain partner_return") || !strings.Contains(got, `iifname { "wan1" }`) {
		t.Errorf("split pair: %q", got)
	}
	if got := StandbyText(loadConfig(t, filepath.Join("testdata", "default.yaml"))); got != "" {
		t.Errorf("no transit link: %q", got)
	}
}

// TestFollowsRole: the controller says its datapath follows the HA role
// only with a transit link (the decision log lists it then only).
func TestFollowsRole(t *testing.T) {
	for file, want := range map[string]bool{"split.yaml": true, "default.yaml": false} {
		cfg := loadConfig(t, filepath.Join("testdata", file))
		c, err := New(cfg, newFakeSource(cfg, monitor.Up), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.FollowsRole(); got != want {
			t.Errorf("%s: FollowsRole %v, want %v", file, got, want)
		}
	}
}

// TestDropEarlyPartnerFlows: flows the partner sent over the transit link
// before this node's ruleset (unmarked, from the partner's transit
// address) are deleted once it is in place; the partner's flows that the
// ruleset marked, and unmarked flows from anyone else, stay.
func TestDropEarlyPartnerFlows(t *testing.T) {
	ns, fd := ctNamespace(t)
	cfg := loadConfig(t, filepath.Join("testdata", "split.yaml"))
	c, err := New(cfg, newFakeSource(cfg, monitor.Up), slog.New(slog.DiscardHandler), WithNetns(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	partner := func(int) [4]byte { return [4]byte{203, 0, 113, 250} }
	synthFlowsFrom(t, fd, partner, 30, 0, 1, 6, 443)                            // before the ruleset
	synthFlowsFrom(t, fd, partner, 20, c.view.Load().scheme.Mark(0), 2, 6, 443) // marked by it
	synthFlows(t, fd, 40, 0, 3, 6, 443)                                         // LAN flows, unmarked
	c.dropEarlyPartnerFlows()
	n, err := c.ct.entries()
	if err != nil || n != 60 {
		t.Fatalf("%d entries left (%v), want 60: the 30 unmarked partner flows gone, 20 marked and 40 others kept", n, err)
	}
}
