package config

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestBGPImportDefaults(t *testing.T) {
	c, err := Parse("bgp.yaml", []byte(bgpLinks+`
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501}
    - link: isp2
      address: 198.51.100.17
      asn: 64502
      import: full
      import_prefixes: [0.0.0.0/0, 203.0.113.0/24]
      max_prefixes: 1000
      require_default: true
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.BGP.Neighbors
	if n[0].Import != BGPImportNone || n[0].Imports() || n[0].MaxPrefixes != 0 || n[0].RequireDefault {
		t.Errorf("neighbour 0: import %q max %d require_default %v", n[0].Import, n[0].MaxPrefixes, n[0].RequireDefault)
	}
	want := []PrefixFilter{{netip.MustParsePrefix("0.0.0.0/0"), 0, 0}, {netip.MustParsePrefix("203.0.113.0/24"), 24, 24}}
	if n[1].Import != BGPImportFull || !n[1].Imports() || n[1].MaxPrefixes != 1000 || !n[1].RequireDefault ||
		len(n[1].ImportPrefixes) != 2 || n[1].ImportPrefixes[0] != want[0] || n[1].ImportPrefixes[1] != want[1] {
		t.Errorf("neighbour 1: %+v", n[1])
	}
}

func TestBGPImportErrors(t *testing.T) {
	const head = "bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501, "
	for _, tc := range []struct{ yaml, want string }{
		{head + "import: some}]}",
			`bgp.yaml:6:115: bgp.neighbors[0].import: unknown value "some": want none, default, full`},
		{head + "import_prefixes: [203.0.113.0/24]}]}",
			`bgp.neighbors[0].import_prefixes: filters a full import: needs import: full (import is none)`},
		{head + "import: default, import_prefixes: [203.0.113.0/24]}]}",
			`bgp.neighbors[0].import_prefixes: filters a full import: needs import: full (import is default)`},
		{head + "import: full, import_prefixes: [203.0.113.1/24]}]}",
			`bgp.neighbors[0].import_prefixes[0]: 203.0.113.1/24 has host bits set: did you mean 203.0.113.0/24?`},
		{head + "import: full, import_prefixes: [\"2001:db8::/32\"]}]}",
			`bgp.neighbors[0].import_prefixes[0]: 2001:db8::/32 is not of the neighbour's family`},
		{head + "import: full, import_prefixes: [203.0.113.0/24, 203.0.113.0/24]}]}",
			`bgp.neighbors[0].import_prefixes[1]: duplicate entry 203.0.113.0/24`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 le 28, 203.0.113.0/24 le 28]}]}",
			`bgp.neighbors[0].import_prefixes[1]: duplicate entry 203.0.113.0/24 le 28`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 le 20]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 le 20": le 20 is shorter than /24: it would match nothing`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 ge 24]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 ge 24": ge 24 must be longer than the prefix's /24 (leave ge out to start at /24)`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 le 33]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 le 33": le 33: want a length 0..32`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 longer]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 longer": unknown word "longer"`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 orlonger le 28]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 orlonger le 28": orlonger stands alone after the prefix`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 le 28 ge 26]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 le 28 ge 26": ge comes once, before le`},
		{head + "import: full, import_prefixes: [203.0.113.0/24 ge 28 le 26]}]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 ge 28 le 26": le 26 is shorter than /28: it would match nothing`},
		{head + "import: full, import_prefixes: [203.0.113.256/24]}]}",
			`bgp.neighbors[0].import_prefixes[0]: bad prefix "203.0.113.256/24": IPv4 field has value >255; want an address and a length`},
		{head + "import: full, max_prefixes: -1}]}",
			`bgp.neighbors[0].max_prefixes: must be 0 (no limit) or more, got -1`},
		{head + "max_prefixes: 10}]}",
			`bgp.neighbors[0].max_prefixes: limits imported routes: needs import: default or full (import is none)`},
		{head + "require_default: true}]}",
			`bgp.neighbors[0].require_default: needs import: default or full (import is none)`},
		{head + "import: none, require_default: true}]}",
			`bgp.neighbors[0].require_default: needs import: default or full (import is none)`},
	} {
		_, err := Parse("bgp.yaml", []byte(bgpLinks+"\n"+tc.yaml+"\n"))
		var es Errors
		if !errors.As(err, &es) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// FuzzParseBGPImport: whatever passes validation imports consistently.
func FuzzParseBGPImport(f *testing.F) {
	f.Add("full", "203.0.113.0/24", 10, true)
	f.Add("default", "", 0, true)
	f.Add("none", "", 0, false)
	f.Add("full", "0.0.0.0/0", 1, false)
	f.Add("full", "203.0.113.0/24 le 28", 0, false)
	f.Add("full", "203.0.113.0/24 ge 25 le 26", 0, false)
	f.Add("full", "198.51.100.0/22 ge 24", 0, false)
	f.Add("full", "0.0.0.0/0 orlonger", 0, false)
	f.Fuzz(func(t *testing.T, imp, prefix string, max int, req bool) {
		y := bgpLinks + "bgp: {asn: 64500, prefixes: [192.0.2.128/25], neighbors: [{link: isp1, address: 198.51.100.1, asn: 64501, import: " +
			quote(imp) + ", max_prefixes: " + strconv.Itoa(max) + ", require_default: " + map[bool]string{true: "true", false: "false"}[req]
		if prefix != "" {
			y += ", import_prefixes: [" + quote(prefix) + "]"
		}
		c, err := Parse("fuzz.yaml", []byte(y+"}]}\n"))
		if err != nil {
			return
		}
		n := c.BGP.Neighbors[0]
		switch {
		case n.Import != BGPImportNone && !n.Imports():
			t.Fatalf("accepted import %q", n.Import)
		case (n.RequireDefault || n.MaxPrefixes != 0) && !n.Imports():
			t.Fatalf("accepted require_default/max_prefixes without import: %+v", n)
		case n.MaxPrefixes < 0:
			t.Fatalf("accepted max_prefixes %d", n.MaxPrefixes)
		case len(n.ImportPrefixes) > 0 && n.Import != BGPImportFull:
			t.Fatalf("accepted import_prefixes with import %q", n.Import)
		}
		for _, f := range n.ImportPrefixes {
			p := f.Prefix
			if p != p.Masked() || !p.Addr().Is4() || f.GE < p.Bits() || f.LE < f.GE || f.LE > 32 {
				t.Fatalf("accepted import prefix %s", f)
			}
			// It matches its own prefix exactly when it starts there,
			// and what it writes back parses to itself.
			if f.Matches(p) != (f.GE == p.Bits()) {
				t.Fatalf("%s: matches its own prefix: %v", f, f.Matches(p))
			}
			var g PrefixFilter
			if err := g.UnmarshalText([]byte(f.String())); err != nil || g != f {
				t.Fatalf("%s: round trip gives %s, %v", f, g, err)
			}
		}
	})
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s) + `"`
}
