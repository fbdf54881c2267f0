package config

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
)

func TestResolvers(t *testing.T) {
	c, err := Parse("r.yaml", []byte(`
defaults:
  resolvers: [203.0.113.53, "[2001:db8:ffff::53]:5353"]
links:
  - name: a
    interface: wan1
    gateway4: 198.51.100.1
    resolvers: ["198.51.100.53:53", "fe80::53%wan1"]
    probes: [{type: http, target: www.example.com}]
  - name: b
    interface: wan2
    gateway4: 198.51.100.17
    probes: [{type: https, target: "www.example.com:8443"}, {target: 203.0.113.10}]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := func(rs []Resolver) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.AddrPort.String())
		}
		return out
	}
	if a := got(c.Links[0].Resolvers); !slices.Equal(a, []string{"198.51.100.53:53", "[fe80::53%wan1]:53"}) {
		t.Errorf("link a resolvers %v", a)
	}
	if b := got(c.Links[1].Resolvers); !slices.Equal(b, []string{"203.0.113.53:53", "[2001:db8:ffff::53]:5353"}) {
		t.Errorf("link b resolvers (from defaults) %v", b)
	}
	// The monitor's lab tests pass configs as JSON.
	js, err := json.Marshal(c.Links[1])
	if err != nil {
		t.Fatal(err)
	}
	var back Link
	if err := json.Unmarshal(js, &back); err != nil || !slices.Equal(back.Resolvers, c.Links[1].Resolvers) {
		t.Errorf("JSON round trip: %s → %v, %v", js, back.Resolvers, err)
	}
}

// FuzzResolverText: whatever UnmarshalText accepts has a port and
// survives a round trip through MarshalText.
func FuzzResolverText(f *testing.F) {
	for _, s := range []string{"198.51.100.53", "198.51.100.53:5353", "2001:db8::53", "[2001:db8::53]:53", "fe80::1%wan1", "[fe80::1%wan1]:53", "2001:db8::53:53", "x:1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r Resolver
		if r.UnmarshalText([]byte(s)) != nil {
			return
		}
		if r.Port() == 0 || !r.Addr().IsValid() {
			t.Fatalf("%q → %v", s, r.AddrPort)
		}
		b, _ := r.MarshalText()
		var back Resolver
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Fatalf("%q → %q → %v, %v", s, b, back.AddrPort, err)
		}
		if netip.AddrPortFrom(r.Addr(), r.Port()) != r.AddrPort {
			t.Fatal("inconsistent")
		}
	})
}
