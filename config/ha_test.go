package config

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const haLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18}
`

const haGood = haLinks + `ha:
  node: gwa
  partner: gwb
  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}
  instances:
    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}
    - {link: isp1, vrid: 52, virtual_addresses: [198.51.100.5/28]}
`

// fakeHAPrograms makes keepalived and conntrackd "found" for a test.
func fakeHAPrograms(t *testing.T, missing ...string) {
	old := lookPath
	lookPath = func(name string) (string, error) {
		for _, m := range missing {
			if name == m {
				return "", exec.ErrNotFound
			}
		}
		return "/usr/sbin/" + name, nil
	}
	t.Cleanup(func() { lookPath = old })
}

func TestHADefaults(t *testing.T) {
	fakeHAPrograms(t)
	c, err := Parse("ha.yaml", []byte(haGood))
	if err != nil {
		t.Fatal(err)
	}
	h := c.HA
	if h.Priority != 100 || h.LinkWeight != 10 || h.Version != 3 || h.AdvertInterval.D() != 100*time.Millisecond || h.Preempt {
		t.Errorf("defaults: %+v", h)
	}
	if h.Sync.Port != 3780 || h.RunDir != "/run/multihome/ha-gwa" || h.Keepalived != "/usr/sbin/keepalived" || h.Conntrackd != "/usr/sbin/conntrackd" {
		t.Errorf("defaults: %+v", h)
	}
	if h.Instances[0].Name != "lan" || h.Instances[1].Name != "isp1" || h.Instances[1].Interface != "wan1" {
		t.Errorf("instances: %+v", h.Instances)
	}
	if got := c.SNAT4(0).String(); got != "198.51.100.5" {
		t.Errorf("SNAT4(isp1) = %s, want the virtual address", got)
	}
	if got := c.SNAT4(1).String(); got != "198.51.100.18" {
		t.Errorf("SNAT4(isp2) = %s, want its own address", got)
	}
}

func TestHAErrors(t *testing.T) {
	fakeHAPrograms(t)
	for _, tc := range []struct{ old, new, want string }{
		{"partner: 203.0.113.250", "partner: 203.0.113.9", `ha.yaml:8:64: ha.sync.partner: 203.0.113.9 is off the sync link 203.0.113.248/30`},
		{"vrid: 52", "vrid: 51", `ha.yaml:11:26: ha.instances[1].vrid: duplicate VRID 51 (also ha.instances[0])`},
		{"partner: gwb", "partner: gwa", `ha.yaml:7:12: ha.partner: "gwa" is this node's own name`},
		{"node: gwa\n", "node: gwa\n  auth_pass_file: /etc/vrrp.pass\n", `ha.auth_pass_file: VRRPv3 (RFC 5798) has no authentication`},
		{"node: gwa\n", "node: gwa\n  advert_interval: 5ms\n", `ha.advert_interval: 5ms: VRRPv3 counts centiseconds`},
		{"node: gwa\n", "node: gwa\n  version: 2\n  advert_interval: 500ms\n", `ha.advert_interval: 500ms: VRRPv2 counts whole seconds`},
		{"node: gwa\n", "node: gwa\n  preempt_delay: 5s\n", `ha.preempt_delay: set without preempt: true`},
		{"node: gwa\n", "node: gwa\n  priority: 250\n", `ha.link_weight: priority 250 + 2 links × 10 = 270 is over VRRP's 254`},
		{"link: isp1", "link: isp9", `ha.instances[1].link: no link named "isp9" in links`},
		{"{interface: lan0,", "{interface: wan2,", `ha.instances[0].interface: "wan2" is link isp2's interface: write link: isp2`},
		{"interface: sync0", "interface: lan0", `is the sync link`},
		{"[192.0.2.1/25]", "[192.0.2.1/25, \"2001:db8:100::1/64\"]", `ha.instances[0].virtual_addresses[1]: 2001:db8:100::1/64: one instance carries one family`},
		{"address4: 198.51.100.2}", "}", `ha.instances[1].link: link isp1 needs address4`},
		{"  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}\n", "", `ha.sync: missing`},
	} {
		in := strings.Replace(haGood, tc.old, tc.new, 1)
		_, err := Parse("ha.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: got %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
}

func TestHAMissingPrograms(t *testing.T) {
	fakeHAPrograms(t, "keepalived", "conntrackd")
	_, err := Parse("ha.yaml", []byte(haGood))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want two errors, got %v", err)
	}
	for i, want := range []string{
		`ha.yaml:6:3: ha.keepalived: keepalived not found (install the Debian package keepalived`,
		`ha.yaml:6:3: ha.conntrackd: conntrackd not found (install the Debian package conntrackd`,
	} {
		if !strings.HasPrefix(es[i].Error(), want) {
			t.Errorf("got %q, want %q", es[i], want)
		}
	}
}
