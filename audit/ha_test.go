package audit

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
)

const pairConfig = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2, probes: [{target: 203.0.113.10}]}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18, probes: [{target: 203.0.113.11}]}
ha:
  node: gwa
  partner: gwb
  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}
  instances:
    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}
`

func parsePair(t *testing.T, yaml string) *config.Config {
	t.Helper()
	for _, p := range []string{"keepalived", "conntrackd"} {
		if _, err := exec.LookPath(p); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + p); err != nil {
				t.Skipf("%s not installed (scripts/deps.sh installs it): the ha section needs it", p)
			}
		}
	}
	c, err := config.Parse("pair.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func haFindings(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Severity.String()+" "+f.Check)
	}
	return out
}

// With an ha section the gateway stops being a single point of failure
// once the partner is seen; not while it is not.
func TestAuditHAPair(t *testing.T) {
	c := parsePair(t, pairConfig)
	seen, unseen := true, false
	for _, tc := range []struct {
		name      string
		live      Live
		gwSPOF    bool
		want, not string
	}{
		{"static: partner counted from the config", Live{}, false, "info ha-partner-assumed", "medium no-ha-partner"},
		{"partner seen", Live{HAPartnerSeen: &seen}, false, "", "high ha-partner-unseen"},
		{"partner not seen", Live{HAPartnerSeen: &unseen}, true, "high ha-partner-unseen", ""},
	} {
		r := StaticLive(c, tc.live)
		if got := slices.Contains(r.SPOFs, "device:gwa"); got != tc.gwSPOF {
			t.Errorf("%s: gateway gwa a SPOF = %v, want %v (SPOFs %v)", tc.name, got, tc.gwSPOF, r.SPOFs)
		}
		if tc.want != "" && !slices.Contains(haFindings(r), tc.want) {
			t.Errorf("%s: no %q in %v", tc.name, tc.want, haFindings(r))
		}
		if tc.not != "" && slices.Contains(haFindings(r), tc.not) {
			t.Errorf("%s: %q in %v", tc.name, tc.not, haFindings(r))
		}
	}
}

// A pair that shares a power feed or the LAN switch is still a single
// point of failure there.
func TestAuditHAPairShared(t *testing.T) {
	topo := `topology:
  power_feeds: [{name: feed-a}, {name: feed-b}]
  devices:
    - {name: gwa, kind: gateway, power: [feed-a]}
    - {name: gwb, kind: gateway, power: [feed-b]}
    - {name: sw1, kind: switch, power: [feed-a, feed-b]}
  ha_partners: [gwb]
  lan: [sw1]
`
	seen := true
	r := StaticLive(parsePair(t, pairConfig+topo), Live{HAPartnerSeen: &seen})
	if !slices.Contains(r.SPOFs, "device:sw1") || slices.Contains(r.SPOFs, "device:gwa") || slices.Contains(r.SPOFs, "power:feed-a") {
		t.Errorf("shared LAN switch: SPOFs %v, want device:sw1 and neither gateway nor a feed", r.SPOFs)
	}
	shared := strings.Replace(topo, "{name: gwb, kind: gateway, power: [feed-b]}", "{name: gwb, kind: gateway, power: [feed-a]}", 1)
	shared = strings.Replace(shared, "  lan: [sw1]\n", "", 1)
	r = StaticLive(parsePair(t, pairConfig+shared), Live{HAPartnerSeen: &seen})
	if !slices.Contains(r.SPOFs, "power:feed-a") {
		t.Errorf("pair on one power feed: SPOFs %v, want power:feed-a", r.SPOFs)
	}
	if !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Check == "shared-power" && slices.Contains(f.Elements, "power:feed-a") }) {
		t.Errorf("pair on one power feed: findings %v", haFindings(r))
	}
}
