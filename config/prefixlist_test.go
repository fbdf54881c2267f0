package config

import (
	"net/netip"
	"testing"
)

func TestPrefixFilter(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		match   []string
		miss    []string
	}{
		{"203.0.113.0/24", "203.0.113.0/24", []string{"203.0.113.0/24"}, []string{"203.0.113.0/25", "203.0.112.0/23", "0.0.0.0/0"}},
		{"0.0.0.0/0", "0.0.0.0/0", []string{"0.0.0.0/0"}, []string{"203.0.113.0/24", "::/0"}},
		{"203.0.113.0/24 le 26", "203.0.113.0/24 le 26", []string{"203.0.113.0/24", "203.0.113.64/26"}, []string{"203.0.113.0/27", "203.0.112.0/23"}},
		{"203.0.113.0/24 ge 25", "203.0.113.0/24 ge 25", []string{"203.0.113.128/25", "203.0.113.1/32"}, []string{"203.0.113.0/24"}},
		{"203.0.113.0/24 GE 25 LE 26", "203.0.113.0/24 ge 25 le 26", []string{"203.0.113.64/26"}, []string{"203.0.113.0/24", "203.0.113.0/27"}},
		{"203.0.113.0/24 le 32", "203.0.113.0/24 orlonger", []string{"203.0.113.0/24", "203.0.113.7/32"}, []string{"203.0.0.0/16"}},
		{"2001:db8::/32 orlonger", "2001:db8::/32 orlonger", []string{"2001:db8:1::/48", "2001:db8::/32"}, []string{"2001:db9::/32", "203.0.113.0/24"}},
		{" 198.51.100.0/22  ge 23  le 24 ", "198.51.100.0/22 ge 23 le 24", []string{"198.51.100.0/23", "198.51.101.0/24"}, []string{"198.51.100.0/22", "198.51.100.0/25"}},
	} {
		var f PrefixFilter
		if err := f.UnmarshalText([]byte(tc.in)); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if f.String() != tc.out {
			t.Errorf("%q reads as %q, want %q", tc.in, f, tc.out)
		}
		for _, p := range tc.match {
			if !f.Matches(netip.MustParsePrefix(p)) {
				t.Errorf("%s does not match %s", f, p)
			}
		}
		for _, p := range tc.miss {
			if f.Matches(netip.MustParsePrefix(p)) {
				t.Errorf("%s matches %s", f, p)
			}
		}
	}
}

// FuzzPrefixFilter: whatever parses writes back to itself, matches
// only routes inside its prefix with a length in GE..LE, and keeps
// GE..LE inside the family's lengths.
func FuzzPrefixFilter(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24", "203.0.113.0/24 le 28", "203.0.113.0/24 ge 25 le 26", "0.0.0.0/0 orlonger",
		"2001:db8::/32 ge 48", "1.2.3.4", "1.2.3.0/24 le", "::/0 le 129"} {
		f.Add(s, "203.0.113.64/26")
	}
	f.Fuzz(func(t *testing.T, s, route string) {
		var pf PrefixFilter
		if pf.UnmarshalText([]byte(s)) != nil {
			return
		}
		maxLen := 32
		if !pf.Prefix.Addr().Is4() {
			maxLen = 128
		}
		if pf.Prefix != pf.Prefix.Masked() || pf.GE < pf.Prefix.Bits() || pf.LE < pf.GE || pf.LE > maxLen {
			t.Fatalf("%q: accepted %+v", s, pf)
		}
		var back PrefixFilter
		if err := back.UnmarshalText([]byte(pf.String())); err != nil || back != pf {
			t.Fatalf("%q → %q → %+v, %v", s, pf, back, err)
		}
		if r, err := netip.ParsePrefix(route); err == nil && pf.Matches(r) {
			if !pf.Prefix.Contains(r.Addr()) || r.Bits() < pf.GE || r.Bits() > pf.LE {
				t.Fatalf("%s matches %s", pf, r)
			}
		}
	})
}
