package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/pd"
)

// TestWithLearned: learned delegations fill the dhcpv6_pd entries of a
// copy of the file's config; the file's config is left as it was; a
// subnet that does not fit the delegation actually given, or a /64 that
// overlaps another prefix, is left out.
func TestWithLearned(t *testing.T) {
	file, err := config.Parse("t.yaml", []byte(`
links:
  - {name: isp1, interface: wan1, gateway6: "2001:db8:1::1"}
  - {name: isp2, interface: wan2, gateway6: "2001:db8:2::1"}
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 1}}
    - {link: isp1, dhcpv6_pd: {length: 56, subnet: 200}}
    - {link: isp2, dhcpv6_pd: {length: 56}}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &pdSub{learned: map[string]pd.Lease{
		"isp1": {Link: "isp1", Prefix: netip.MustParsePrefix("2001:db8:1:8000::/60"), Preferred: now.Add(8 * time.Second), Valid: now.Add(12 * time.Second)},
		"isp2": {Link: "isp2", Prefix: netip.MustParsePrefix("2001:db8:2:100::/56"), Preferred: now.Add(time.Hour), Valid: now.Add(2 * time.Hour)},
	}}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), pd: s}
	eff := d.withLearned(file)
	ps := eff.IPv6.Prefixes
	if ps[0].Prefix.String() != "2001:db8:1:8001::/64" || ps[0].Learned == nil || !ps[0].Learned.Valid.Equal(now.Add(12*time.Second)) ||
		ps[0].Learned.Delegated.String() != "2001:db8:1:8000::/60" {
		t.Errorf("entry 0: %+v, want 2001:db8:1:8001::/64 from the /60", ps[0])
	}
	if ps[1].Prefix.IsValid() {
		t.Errorf("entry 1: subnet 200 does not fit the /60 given, got %s", ps[1].Prefix)
	}
	if ps[2].Prefix.IsValid() {
		t.Errorf("entry 2: its /64 2001:db8:2:100::/64 overlaps the static one, got %s", ps[2].Prefix)
	}
	for i, p := range file.IPv6.Prefixes[:3] {
		if p.Prefix.IsValid() || p.Learned != nil {
			t.Errorf("the file's config was changed: entry %d %+v", i, p)
		}
	}
	if n := len(eff.IPv6.Known()); n != 2 {
		t.Errorf("%d known prefixes, want 2", n)
	}
	// Lost: nothing filled in.
	delete(s.learned, "isp1")
	if p := d.withLearned(file).IPv6.Prefixes[0]; p.Prefix.IsValid() {
		t.Errorf("after loss: %+v", p)
	}
}
