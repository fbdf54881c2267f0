package audit

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
)

const twoLinks = `
links:
  - name: isp1
    interface: wan1
    gateway4: 198.51.100.1
    probes: [{target: 203.0.113.10}, {target: 192.0.2.200}]
  - name: isp2
    interface: wan2
    gateway4: 198.51.100.17
    probes: [{target: 203.0.113.11}, {target: 192.0.2.201}]
`

// redundant is a site with no single point of failure: two gateways, two
// edge switches on two feeds, two building entries, two providers with
// disjoint upstreams, DNS hosted on and off site.
const redundant = twoLinks + `
topology:
  gateway: gw1
  ha_partners: [gw2]
  power_feeds: [{name: feed-a}, {name: feed-b}]
  conduits: [{name: north}, {name: south}]
  devices:
    - {name: gw1, kind: gateway, power: [feed-a]}
    - {name: gw2, kind: gateway, power: [feed-b]}
    - {name: sw1, kind: switch, power: [feed-a]}
    - {name: sw2, kind: switch, power: [feed-b]}
    - {name: ns-local, kind: server, power: [feed-a, feed-b]}
  providers:
    - {name: acme, asn: 64500, upstreams: [AS64510, AS64511]}
    - {name: globex, asn: 64501, upstreams: [AS64512]}
  links:
    - {name: isp1, provider: acme, path: [gw1, sw1, north]}
    - {name: isp2, provider: globex, path: [gw1, sw2, south]}
  dns:
    - {name: ns1, role: authoritative, address: 198.51.100.53, links: [isp1, isp2], device: ns-local}
    - {name: ns2, role: authoritative, address: 192.0.2.53}
    - {name: r1, role: resolver, address: 192.0.2.1, links: [isp1, isp2], device: ns-local}
    - {name: r2, role: resolver, address: 192.0.2.2}
  prefixes: [198.51.100.0/24, 2001:db8::/48]
`

func parse(t testing.TB, y string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func checks(r *Report, min Severity) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity >= min {
			out = append(out, f.Severity.String()+" "+f.Check+" "+strings.Join(labels(f.Elements), ","))
		}
	}
	slices.Sort(out)
	return out
}

func TestStatic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		min   Severity
		want  []string
		spofs []string
	}{
		{
			name: "healthy redundant design",
			yaml: redundant,
			min:  Low,
		},
		{
			name: "router SPOF",
			yaml: strings.Replace(redundant, "path: [gw1, sw2, south]", "path: [gw1, sw1, south]", 1),
			min:  Low,
			want: []string{"high shared-device sw1", "high shared-power feed-a"},
			// sw1 draws only from feed-a.
			spofs: []string{"device:sw1", "power:feed-a"},
		},
		{
			name: "shared power feed",
			yaml: strings.Replace(redundant, "{name: sw2, kind: switch, power: [feed-b]}", "{name: sw2, kind: switch, power: [feed-a]}", 1),
			min:  Low,
			want: []string{"high shared-power feed-a"},
		},
		{
			name: "shared carrier",
			yaml: strings.Replace(redundant, "upstreams: [AS64512]", "upstreams: [as64510]", 1),
			min:  Low,
			want: []string{"medium shared-carrier AS64510,acme,globex"},
		},
		{
			name: "only carrier shared",
			yaml: strings.Replace(strings.Replace(redundant, "upstreams: [AS64512]", "upstreams: [AS3356]", 1), "upstreams: [AS64510, AS64511]", "upstreams: [AS3356]", 1),
			min:  Low,
			want: []string{"high shared-carrier AS3356"},
		},
		{
			name: "provider buying transit from the other",
			yaml: strings.Replace(redundant, "upstreams: [AS64512]", "upstreams: [AS64500]", 1),
			min:  Low,
			want: []string{"high single-provider acme"},
		},
		{
			name: "shared conduit",
			yaml: strings.Replace(redundant, "path: [gw1, sw2, south]", "path: [gw1, sw2, north]", 1),
			min:  Low,
			want: []string{"high shared-conduit north"},
		},
		{
			name: "single authoritative DNS",
			yaml: strings.Replace(redundant, "    - {name: ns2, role: authoritative, address: 192.0.2.53}\n", "", 1),
			min:  Low,
			want: []string{"high dns-single-authoritative ns1"},
		},
		{
			name: "authoritative DNS in one /24 over one link",
			yaml: strings.Replace(redundant, "{name: ns2, role: authoritative, address: 192.0.2.53}", "{name: ns2, role: authoritative, address: 198.51.100.54, links: [isp1]}", 1) + "",
			min:  Low,
			want: []string{"medium dns-authoritative-one-prefix ns1,ns2"},
		},
		{
			name: "resolvers over one link",
			yaml: strings.Replace(strings.Replace(redundant, "{name: r2, role: resolver, address: 192.0.2.2}", "{name: r2, role: resolver, address: 192.0.2.2, links: [isp2]}", 1),
				"{name: r1, role: resolver, address: 192.0.2.1, links: [isp1, isp2]", "{name: r1, role: resolver, address: 192.0.2.1, links: [isp2]", 1),
			min:  Low,
			want: []string{"medium dns-resolver-one-link isp2"},
		},
		{
			name: "long prefix",
			yaml: strings.Replace(redundant, "prefixes: [198.51.100.0/24, 2001:db8::/48]", "prefixes: [198.51.100.0/25, 2001:db8::/56]", 1),
			min:  Low,
			want: []string{"high long-prefix 198.51.100.0/25", "high long-prefix 2001:db8::/56"},
		},
		{
			name: "no HA partner",
			yaml: strings.Replace(redundant, "ha_partners: [gw2]", "ha_partners: []", 1),
			min:  Low,
			want: []string{"high shared-power feed-a", "medium no-ha-partner gw1"},
			// gw1 draws only from feed-a.
			spofs: []string{"device:gw1", "power:feed-a"},
		},
		{
			name: "probe targets inside the provider",
			yaml: strings.Replace(redundant, "{name: globex, asn: 64501, upstreams: [AS64512]}", "{name: globex, asn: 64501, upstreams: [AS64512], networks: [203.0.113.0/24]}", 1),
			min:  Low,
			want: []string{"medium probe-inside-provider isp1,globex"},
		},
		{
			name:  "config only: one link probed at its gateway",
			yaml:  "links: [{name: isp1, interface: wan1, gateway4: 198.51.100.1}]",
			min:   Info,
			want:  []string{"high single-link isp1", "info no-topology ", "medium probe-gateway-only isp1"},
			spofs: []string{"device:gateway", "link:isp1"},
		},
		{
			name: "config only: identical single target",
			yaml: `
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1, probes: [{target: 203.0.113.10}]}
  - {name: b, interface: wan2, gateway4: 198.51.100.17, probes: [{target: 203.0.113.10}]}
`,
			min:  Low,
			want: []string{"low probe-single-target a", "low probe-single-target b", "medium probe-targets-identical a,b"},
		},
		{
			name: "config only: probing the other link's gateway",
			yaml: `
links:
  - {name: a, interface: wan1, gateway4: 198.51.100.1, probes: [{target: 198.51.100.17}, {target: 203.0.113.10}]}
  - {name: b, interface: wan2, gateway4: 198.51.100.17, probes: [{target: 203.0.113.11}, {target: 203.0.113.12}]}
`,
			min:  Low,
			want: []string{"medium probe-target-other-link a,b"},
		},
		{
			name: "dns section without secondaries",
			yaml: twoLinks + `
dns:
  listen: ["0.0.0.0:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.2"]
`,
			min:  Low,
			want: []string{"high dns-single-authoritative multihome"},
		},
		{
			name: "dns section with secondaries in one /24",
			yaml: twoLinks + `
dns:
  listen: ["198.51.100.2:53"]
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.2"]
      transfer: {notify: ["198.51.100.3:53"]}
`,
			min:  Low,
			want: []string{"medium dns-authoritative-one-prefix multihome,secondary 198.51.100.3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Static(parse(t, tc.yaml))
			if got := checks(r, tc.min); !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got %q\nwant %q", got, tc.want)
			}
			if tc.spofs != nil && !slices.Equal(r.SPOFs, tc.spofs) {
				t.Errorf("SPOFs %q, want %q", r.SPOFs, tc.spofs)
			}
		})
	}
}

// TestGraphAlgorithms checks articulation points and the minimum cut
// against the single-failure simulation.
func TestGraphAlgorithms(t *testing.T) {
	r := Static(parse(t, redundant))
	if len(r.SPOFs) != 0 {
		t.Errorf("redundant design has SPOFs %v", r.SPOFs)
	}
	if ap := ArticulationPoints(r.Graph, idLAN, idInternet); len(ap) != 0 {
		t.Errorf("articulation points %v", ap)
	}
	if got := len(r.MinCut); got != 2 {
		t.Errorf("min cut %v, want 2 elements", r.MinCut)
	}
	if got := r.ServiceCuts[ServiceInternet]; len(got) != 2 {
		t.Errorf("internet service cut %v, want two elements", got)
	}
	if got := r.ServiceCuts[ServiceAuthoritative]; !slices.Equal(got, []string{"device:ns-local", "dns:ns2"}) {
		t.Errorf("authoritative DNS cut %v", got)
	}
	shared := Static(parse(t, strings.Replace(redundant, "path: [gw1, sw2, south]", "path: [gw1, sw1, south]", 1)))
	if ap := ArticulationPoints(shared.Graph, idLAN, idInternet); !slices.Equal(ap, []string{"device:sw1"}) {
		t.Errorf("articulation points %v, want [device:sw1]", ap)
	}
	if !slices.Equal(shared.MinCut, []string{"device:sw1"}) {
		t.Errorf("min cut %v, want [device:sw1]", shared.MinCut)
	}
	if got := shared.ServiceCuts[ServiceInternet]; !slices.Equal(got, []string{"device:sw1"}) {
		t.Errorf("internet service cut %v, want [device:sw1]", got)
	}
	if n := shared.Graph.Node("device:sw1"); n == nil || !n.SPOF {
		t.Errorf("sw1 not marked SPOF: %+v", n)
	}
}

func TestRender(t *testing.T) {
	r := Static(parse(t, strings.Replace(redundant, "path: [gw1, sw2, south]", "path: [gw1, sw1, south]", 1)))
	var text, js, dot, svg bytes.Buffer
	for _, err := range []error{r.WriteText(&text), r.WriteJSON(&js), r.WriteDOT(&dot), r.WriteSVG(&svg)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(text.String(), "[HIGH] shared-device") || !strings.Contains(text.String(), "single points of failure: sw1, feed-a") {
		t.Errorf("text:\n%s", text.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Findings) != len(r.Findings) || back.Findings[0].Severity != High {
		t.Errorf("json round trip: %v\n%s", err, js.String())
	}
	if !strings.Contains(dot.String(), `"device:sw1" [label="sw1\nswitch", shape=box, style=filled`) {
		t.Errorf("dot:\n%s", dot.String())
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Errorf("svg is not XML: %v", err)
	}
	if !strings.Contains(svg.String(), "SPOF · switch") {
		t.Errorf("svg does not highlight sw1:\n%s", svg.String())
	}
}

func TestSharedHops(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tgt := a("203.0.113.10")
	paths := []Path{
		{Link: "isp1", Target: tgt, Reached: true, Hops: []Hop{
			{TTL: 1, Addr: a("198.51.100.1"), Forward: a("198.51.100.130")},
			{TTL: 2, Addr: a("198.51.100.129"), Forward: a("203.0.113.242")},
			{TTL: 3, Addr: tgt, Target: true},
		}},
		{Link: "isp2", Target: tgt, Reached: true, Hops: []Hop{
			{TTL: 1, Addr: a("198.51.100.17"), Forward: a("198.51.100.146")},
			{TTL: 2, Addr: a("198.51.100.145"), Forward: a("203.0.113.242")},
			{TTL: 3, Addr: tgt, Target: true},
		}},
	}
	got := sharedHops(paths)
	if len(got) != 1 || !slices.Equal(got[0].Links, []string{"isp1", "isp2"}) || !slices.Contains(got[0].Addrs, a("203.0.113.242")) {
		t.Fatalf("shared %+v", got)
	}
	// The target's own network is never shared infrastructure.
	paths[0].Hops[1] = Hop{TTL: 2, Addr: a("203.0.113.1")}
	paths[1].Hops[1] = Hop{TTL: 2, Addr: a("203.0.113.1")}
	if got := sharedHops(paths); len(got) != 0 {
		t.Errorf("target network reported shared: %+v", got)
	}
}

func TestRecordedRoute(t *testing.T) {
	o := recordRoute()
	copy(o[3:], []byte{198, 51, 100, 2, 203, 0, 113, 10})
	o[2] = 12
	got := recordedRoute(o)
	if len(got) != 2 || got[1].String() != "203.0.113.10" {
		t.Errorf("got %v", got)
	}
	for _, bad := range [][]byte{{7}, {7, 1}, {7, 200, 4}, {1, 1, 0}, {68, 4, 5, 0}} {
		recordedRoute(bad) // must not panic
	}
}

// FuzzStatic audits arbitrary configs that load: the checks and renderers
// must never panic.
func FuzzStatic(f *testing.F) {
	f.Add(redundant)
	f.Add(twoLinks + "topology:\n  gateway: sw\n  devices: [{name: sw}]\n  providers: [{name: a, upstreams: [b]}, {name: b, upstreams: [a]}]\n  links: [{name: isp1, provider: a, path: [sw, sw]}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "file:") || strings.Contains(s, "secret_file") {
			return
		}
		c, err := config.Parse("fuzz.yaml", []byte(s))
		if err != nil {
			return
		}
		r := Static(c)
		var b bytes.Buffer
		_ = r.WriteText(&b)
		_ = r.WriteDOT(&b)
		_ = r.WriteSVG(&b)
	})
}

func TestTopologyLinkMissing(t *testing.T) {
	r := Static(parse(t, twoLinks+"topology:\n  ha_partners: [gw2]\n  devices: [{name: gw2}]\n  links: [{name: isp1}]\n"))
	if got := checks(r, Info); !slices.Equal(got, []string{"info topology-link-missing isp2"}) {
		t.Errorf("findings %q", got)
	}
}
