package outbound

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/multihome/multihome/lab"
)

// TestLabStickyFull: with sticky_size 1 each of the policy's sets holds
// one source; a third LAN host finds both full: its connections still
// work, spread over both links without being recorded, while the two
// recorded hosts keep their links.
func TestLabStickyFull(t *testing.T) {
	e := newEnv(t, lab.Spec{ISPs: 2, LANHosts: 3}, `outbound:
  policies:
    - {name: sticky, type: sticky, sticky_timeout: 1m, sticky_size: 1}
`)
	// Fill the sets: a host is recorded when a flow of it is picked for
	// a link whose set has room. Go on until both v4 sets hold a source.
	first := map[string]string{}
	var listing string
	var recorded map[string]string // LAN address -> set
	for round := 0; ; round++ {
		for _, h := range []string{"lan1", "lan2", "lan3"} {
			first[h] = e.mustVia(h)
		}
		out, err := e.l.Run(context.Background(), lab.RoleGW, "nft", "list", "table", "inet", "multihome").Output()
		if err != nil {
			t.Fatal(err)
		}
		listing = string(out)
		v4 := regexp.MustCompile(`(?s)set sticky0_\d_v4 \{.*?\n\t\}`).FindAllString(listing, -1)
		if len(v4) != 2 {
			t.Fatalf("%d v4 sticky sets, want 2:\n%s", len(v4), listing)
		}
		recorded = map[string]string{}
		full := 0
		for _, s := range v4 {
			name := strings.Fields(s)[1]
			addrs := regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+) (timeout|expires)`).FindAllStringSubmatch(s, -1)
			if len(addrs) > 1 {
				t.Fatalf("set %s holds %d sources, size 1:\n%s", name, len(addrs), s)
			}
			for _, a := range addrs {
				recorded[a[1]] = name
			}
			full += len(addrs)
		}
		if full == 2 {
			break
		}
		if round == 50 {
			t.Fatalf("sets not both filled after %d rounds of 3 hosts:\n%s", round, listing)
		}
	}
	if n := strings.Count(listing, "size 1\n"); n != 4 {
		t.Errorf("%d sets listed with size 1, want 4 (2 links × 2 families):\n%s", n, listing)
	}
	var loose string
	for _, h := range []string{"lan1", "lan2", "lan3"} {
		if _, ok := recorded[hostAddr(e, h)]; !ok {
			loose = h
			break
		}
	}
	if loose == "" {
		t.Fatalf("all three hosts recorded in two sets of size 1: %v", recorded)
	}
	seen := map[string]int{}
	for range 24 {
		for _, h := range []string{"lan1", "lan2", "lan3"} {
			got := e.mustVia(h) // a full set must not break new flows
			if h == loose {
				seen[got]++
			} else if _, ok := recorded[hostAddr(e, h)]; ok && got != first[h] {
				t.Fatalf("%s is recorded but moved from %s to %s", h, first[h], got)
			}
		}
	}
	if len(seen) != 2 {
		out, _ := e.l.Run(context.Background(), lab.RoleGW, "nft", "list", "table", "inet", "multihome").Output()
		t.Errorf("%s (not recorded: sets full) left by %v, want both links (spread by weight); recorded %v\n%s", loose, seen, recorded, out)
	}
}

func hostAddr(e *env, name string) string {
	for _, h := range e.l.Hosts {
		if h.Name == name {
			return h.Addr.Addr().String()
		}
	}
	e.t.Fatalf("no LAN host %s", name)
	return ""
}
