package ha

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files")

const pairYAML = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17, address4: 198.51.100.18}
ha:
  node: gwa
  partner: gwb
  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}
  run_dir: /run/multihome/ha-gwa
  keepalived: /usr/sbin/keepalived
  conntrackd: /usr/sbin/conntrackd
  instances:
    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}
    - {link: isp1, vrid: 52, virtual_addresses: [198.51.100.5/28]}
    - {link: isp2, vrid: 53, virtual_addresses: [198.51.100.21/28]}
`

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("pair.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (rerun with -update after checking):\n%s", name, p, got)
	}
}

func TestRenderGolden(t *testing.T) {
	cfg := parse(t, pairYAML)
	golden(t, "keepalived.conf", RenderKeepalived(cfg, ""))
	golden(t, "conntrackd.conf", RenderConntrackd(cfg))

	one := strings.Replace(pairYAML, "    - {link: isp1, vrid: 52, virtual_addresses: [198.51.100.5/28]}\n    - {link: isp2, vrid: 53, virtual_addresses: [198.51.100.21/28]}\n", "", 1)
	one = strings.Replace(one, "  node: gwa\n", "  node: gwa\n  preempt: true\n  preempt_delay: 2500ms\n  version: 2\n  advert_interval: 1s\n  auth_pass_file: /etc/multihome/vrrp.pass\n", 1)
	golden(t, "keepalived-lan-only.conf", RenderKeepalived(parse(t, one), "s3cret"))
}

// keepalived itself accepts what is rendered (its config-test mode).
func TestRenderKeepalivedParses(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/keepalived"); err != nil {
			t.Skip("keepalived not installed (scripts/deps.sh installs it)")
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the interfaces are made in a throwaway namespace")
	}
	ns := netns.Unique(lab.TestPrefix, "ka")
	if err := netns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	for _, dev := range []string{"lan0", "wan1", "wan2", "sync0"} {
		if out, err := exec.Command("ip", "-n", ns, "link", "add", dev, "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	cfg := parse(t, pairYAML)
	cfg.HA.RunDir = t.TempDir()
	conf := filepath.Join(cfg.HA.RunDir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(RenderKeepalived(cfg, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := netns.Command(t.Context(), ns, bin, "--config-test", "-f", conf).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("keepalived --config-test: %v\n%s", err, out)
	}
}
