package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// learnedConfig is the lab config with isp2's address4 left out (learned
// from wan2) and a name answered only with isp2's own address.
func learnedConfig(t *testing.T) []byte {
	t.Helper()
	cfg := strings.Replace(string(examples.Lab()), "    address4: 198.51.100.18\n", "", 1)
	cfg = strings.Replace(cfg, "      names:\n", "      names:\n        - name: self2\n          records: [{link: isp2, a: self}]\n", 1)
	if !strings.Contains(cfg, "self2") || strings.Contains(cfg, "address4: 198.51.100.18") {
		t.Fatal("the lab example changed: cannot derive the test config")
	}
	return []byte(cfg)
}

// TestLearnedAddressFeedsDNS: isp2 sets no address4. check-config warns
// that "a: self" on it can only be learned; the daemon answers the name
// with the address wan2 has; when the address is removed, the status says
// what lacks it; when wan2 is renumbered, the answer follows.
func TestLearnedAddressFeedsDNS(t *testing.T) {
	requireRoot(t)
	cfg := learnedConfig(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, path := startDaemon(t, l, cfg)

	out, err := exec.Command(binary, "check-config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `warning: `+path) || !strings.Contains(string(out), `dns.zones[0].names[0].records[0].a: "self" on link isp2, which sets no address4: the address is learned from interface wan2`) {
		t.Errorf("check-config does not warn about the learned address: %v\n%s", err, out)
	}

	d.waitState(10*time.Second, "isp1", monitor.Up)
	via1 := l.ISPs[0].GW.String()
	waitAnswer := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, _, err := queryA(t, l, via1, "self2.example.com")
			if err == nil && slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: self2.example.com = %v (%v), want %v", what, got, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitAnswer("at start", "198.51.100.18")
	statusOf := func() api.LinkSummary {
		t.Helper()
		out, err := d.cli("status", "--json")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var o api.Overview
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		for _, s := range o.Summary {
			if s.Link == "isp2" {
				return s
			}
		}
		t.Fatalf("no isp2 in the status:\n%s", out)
		return api.LinkSummary{}
	}
	if s := statusOf(); s.Address4 != "198.51.100.18" || len(s.Warnings) != 0 {
		t.Errorf("status of isp2: address4 %q warnings %q, want the learned 198.51.100.18 and none", s.Address4, s.Warnings)
	}

	ip := func(args ...string) {
		t.Helper()
		if out, err := l.Run(context.Background(), "gw", append([]string{"ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("addr", "del", "198.51.100.18/28", "dev", "wan2")
	waitAnswer("with no address on wan2") // NOERROR, no A record: all_down=all has nothing to give
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := statusOf()
		if s.Address4 == "" && len(s.Warnings) == 2 && strings.Contains(s.Warnings[0], `dns.zones[0].names[0].records[0].a: "self" needs link isp2's IPv4 address, not known: interface wan2 has none`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of isp2 with no address on wan2: address4 %q warnings %q", s.Address4, s.Warnings)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(d.logText(), "address not known yet") {
		t.Errorf("the daemon did not log the missing address:\n%s", d.logText())
	}
	// One netlink subscription serves the monitor and the learned
	// addresses, and nothing makes it fail (CI once logged "Wrong sender
	// portid" from a second one right after every start).
	if strings.Contains(d.logText(), "subscription failed") {
		t.Errorf("a netlink subscription failed:\n%s", d.logText())
	}

	changed := time.Now()
	ip("addr", "add", "198.51.100.20/28", "dev", "wan2")
	waitAnswer("after wan2 was renumbered", "198.51.100.20")
	t.Logf("the answer followed the new address %s after it was added", time.Since(changed).Round(time.Millisecond))
	deadline = time.Now().Add(5 * time.Second)
	for {
		s := statusOf()
		if s.Address4 == "198.51.100.20" && len(s.Warnings) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of isp2 after the renumbering: address4 %q warnings %q", s.Address4, s.Warnings)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
