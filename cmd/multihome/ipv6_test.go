package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
)

// multihome status prints the IPv6 prefixes table after the links when
// the daemon has an ipv6 section, and nothing more when it has none.
func TestCmdStatusIPv6(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...))
	_, addr := apitest.Start(t, f, api.Options{})
	var out bytes.Buffer
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "IPv6") {
		t.Errorf("IPv6 table without an ipv6 section:\n%s", out.String())
	}

	f.SetIPv6(true, apitest.IPv6())
	f.UpdatePrefix("fiber", func(p *api.IPv6Prefix) {
		p.State, p.Reason, p.PreferredLifetime = api.IPv6Deprecated, "link down", 0
	})
	out.Reset()
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Logf("\n%s", s)
	_, table, ok := strings.Cut(s, "\nIPv6 prefixes (sadr on lan0)\n")
	if !ok {
		t.Fatalf("no IPv6 prefixes title after the links:\n%s", s)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want header, 3 prefixes and a firewall set:\n%s", len(lines), table)
	}
	for i, re := range []string{
		`^LINK\s+PREFIX\s+SOURCE\s+STATE\s+PREFERRED\s+VALID\s+RENEW\s+LEASE ENDS\s+REASON$`,
		`^fiber\s+2001:db8:1:100::/64\s+static\s+deprecated\s+0s\s+1h0m0s\s+-\s+-\s+link down$`,
		`^cable\s+2001:db8:2:100::/64\s+dhcpv6-pd\s+preferred\s+30m0s\s+1h0m0s\s+in (29m5\ds|30m0s)\s+in (1h59m5\ds|2h0m0s)\s*$`,
		`^lte\s+-\s+dhcpv6-pd\s+pending\s+-\s+-\s+-\s+-\s+no delegation yet$`,
		`^firewall set inet filter lan6: \{2001:db8:1:100::/64, 2001:db8:2:100::/64\} ok$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d %q does not match %s", i, lines[i], re)
		}
	}
}
