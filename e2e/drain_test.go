package e2e

import (
	"context"
	"encoding/json"
	"os"
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

// TestDrainEverywhere: `multihome link drain isp1` means the same in every
// subsystem: no new outbound flows on isp1, isp1's address out of the DNS
// answers, isp1's LAN prefix deprecated in the RAs, and the site's prefix
// announced to isp1's router prepended (bgp.on_drain: prepend, the
// default) or withdrawn (on_drain: withdraw, by reload); clearing the
// drain gives everything back.
func TestDrainEverywhere(t *testing.T) {
	requireRoot(t)
	if err := lab.FRRAvailable(); err != nil {
		t.Skipf("needs FRR (scripts/deps.sh installs it): %v", err)
	}
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	f, err := l.StartFRR(context.Background(), "isp1", `router bgp 64501
 bgp router-id 198.51.100.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.51.100.2 remote-as 64500
 neighbor 198.51.100.2 timers 3 9
 neighbor 198.51.100.2 timers connect 1
`)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "192.0.2.128/25"
	bgpSection := func(onDrain string) string {
		return `
bgp:
  asn: 64500
  prefixes: [` + prefix + `]
  connect_retry: 1s
  down_prepend: 3
  on_drain: ` + onDrain + `
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501}
`
	}
	const ipv6 = `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
`
	base := string(examples.Lab()) + ipv6
	d, path := startDaemon(t, l, []byte(base+bgpSection("prepend")))
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)

	route := func(want string, ok bool, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got, has, err := f.Route(prefix)
			if err == nil && has == ok && (!ok || got == want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: isp1's router has %s: %v path %q (%v); want %v path %q", what, prefix, has, got, err, ok, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	via1, via2 := l.ISPs[0].GW.String(), l.ISPs[1].GW.String()
	dnsAnswers := func(want ...string) {
		t.Helper()
		slices.Sort(want)
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, _, err := queryA(t, l, via2, "www.example.com")
			if err == nil && slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("www.example.com = %v (%v), want %v", got, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	prefixState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := ipv6Of(t, d)
			if slices.ContainsFunc(st.Prefixes, func(p api.IPv6Prefix) bool { return p.Link == "isp1" && string(p.State) == want }) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("isp1's LAN prefix is not %s: %+v", want, st.Prefixes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sources := func(n int) map[string]int {
		out := map[string]int{}
		for range n {
			src, err := sourceOf(t, l, 3*time.Second)
			if err != nil {
				t.Fatalf("LAN connection: %v", err)
			}
			out[src]++
		}
		return out
	}

	route("64500", true, "both links up")
	dnsAnswers(via1, via2)
	prefixState("preferred")

	if out, err := d.cli("link", "drain", "isp1", "--reason", "maintenance"); err != nil {
		t.Fatalf("link drain: %v\n%s", err, out)
	}
	route("64500 64500 64500 64500", true, "isp1 drained (on_drain: prepend, down_prepend: 3)")
	dnsAnswers(via2)
	prefixState("deprecated")
	if got := sources(12); got[via1] != 0 || got[via2] != 12 {
		t.Errorf("new LAN connections while isp1 is drained left by %v, want all by isp2 (%s)", got, via2)
	}

	// on_drain: withdraw, by reload, with isp1 still drained.
	if err := os.WriteFile(path, []byte(base+bgpSection("withdraw")+apiTail(d)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.hup(t); err != nil {
		t.Fatalf("reload to on_drain: withdraw: %v", err)
	}
	route("", false, "isp1 drained (on_drain: withdraw)")

	if out, err := d.cli("link", "up", "isp1"); err != nil {
		t.Fatalf("link up: %v\n%s", err, out)
	}
	route("64500", true, "drain cleared")
	dnsAnswers(via1, via2)
	prefixState("preferred")
}

// apiTail is the api line startDaemon appended to the config.
func apiTail(d *daemon) string {
	return "\napi: {listen: \"" + d.api + "\"}\n"
}

func ipv6Of(t *testing.T, d *daemon) api.IPv6Status {
	t.Helper()
	var st api.IPv6Status
	body := getBody(t, strings.TrimPrefix(d.api, "unix:"), "/api/v1/ipv6")
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /api/v1/ipv6: %v\n%s", err, body)
	}
	return st
}
