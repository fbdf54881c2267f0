package importer

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/uci"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./importer -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the output (go test ./importer -update rewrites it):\n%s", p, got)
	}
}

func readUCI(t *testing.T, p string) *uci.File {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := uci.Parse(p, b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkResult loads the YAML as check-config does and checks that every
// note is in it as a comment.
func checkResult(t *testing.T, r *Result) *config.Config {
	t.Helper()
	cfg, err := config.Parse("imported.yaml", r.YAML)
	if err != nil {
		t.Fatalf("imported config does not load: %v\n%s", err, r.YAML)
	}
	for _, n := range r.Notes {
		first, _, _ := strings.Cut(n.Msg, "\n")
		if !strings.Contains(string(r.YAML), "# NOTE "+n.Pos+": "+first+"\n") {
			t.Errorf("note %q is not in the YAML", n)
		}
	}
	return cfg
}

// mwanMapped are the options with an equivalent; every other option set
// in a test input must be named by a note (its line or its section's).
var mwanMapped = map[string][]string{
	"interface": {"enabled", "family", "track_ip", "track_method", "reliability", "timeout", "interval", "down", "up",
		"httping_ssl", "check_quality", "failure_latency", "failure_loss", "recovery_latency", "recovery_loss", "count"},
	"member": {"interface", "metric", "weight"},
	"policy": {"use_member", "last_resort"},
	"rule":   {"src_ip", "dest_ip", "proto", "src_port", "dest_port", "sticky", "timeout", "use_policy", "family", "src_iface"},
}

func TestMWAN3Samples(t *testing.T) {
	for _, c := range []struct{ name, mwan3, network string }{
		{"default", "testdata/mwan3/default.uci", ""},
		{"twowan", "testdata/mwan3/twowan.uci", "testdata/mwan3/network.uci"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := readUCI(t, c.mwan3)
			var nf *uci.File
			if c.network != "" {
				nf = readUCI(t, c.network)
			}
			r, err := MWAN3(f, nf)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r)
			golden(t, "mwan3/"+c.name+".golden.yaml", r.YAML)
			noted := map[string]bool{}
			for _, n := range r.Notes {
				noted[n.Pos] = true
			}
			for _, s := range f.Sections {
				for _, o := range s.Options {
					if slices.Contains(mwanMapped[s.Type], o.Name) {
						continue
					}
					if !noted[fmt.Sprintf("%s:%d", f.Name, o.Line)] && !noted[fmt.Sprintf("%s:%d", f.Name, s.Line)] {
						t.Errorf("%s:%d: %s %s option %s is neither mapped nor noted", f.Name, o.Line, s.Type, s.Name, o.Name)
					}
				}
			}
		})
	}
}

// TestMWAN3Twowan checks the meaning of the two-WAN conversion, beyond
// the golden text.
func TestMWAN3Twowan(t *testing.T) {
	r, err := MWAN3(readUCI(t, "testdata/mwan3/twowan.uci"), readUCI(t, "testdata/mwan3/network.uci"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkResult(t, r)
	if len(cfg.Links) != 2 {
		t.Fatalf("%d links, want 2 (wan+wan6 on eth1, wanb+wanb6 on eth2)", len(cfg.Links))
	}
	wan, wanb := cfg.LinkByName("wan"), cfg.LinkByName("wanb")
	if wan.Interface != "eth1" || wanb.Interface != "eth2" || wanb.Gateway4.String() != "198.51.100.17" || wanb.Gateway6.String() != "2001:db8:2::1" {
		t.Errorf("devices/gateways: wan %+v wanb %+v", wan, wanb)
	}
	if wan.Priority != 1 || wanb.Priority != 2 || wan.Weight != 3 || wanb.Weight != 2 {
		t.Errorf("priorities %d/%d weights %d/%d, want 1/2 and 3/2 (from the default policy wan_wanb)", wan.Priority, wanb.Priority, wan.Weight, wanb.Weight)
	}
	h := wan.Health
	if h.Interval.D().String() != "5s" || h.MinTargetsUp != 2 || h.DownAfter != 3 || h.Degraded.RTT.D().String() != "500ms" || float64(h.Recovered.Loss) != 0.05 {
		t.Errorf("wan health %+v", h)
	}
	if wanb.Probes[0].Type != config.ProbeHTTPS {
		t.Errorf("httping with httping_ssl: %+v", wanb.Probes[0])
	}
	o := cfg.Outbound
	if o.DefaultPolicy != "wan_wanb" {
		t.Errorf("default policy %q", o.DefaultPolicy)
	}
	types := map[string]string{}
	for _, p := range o.Policies {
		types[p.Name] = string(p.Type) + "/" + string(p.LastResort)
	}
	want := map[string]string{"wan_only": "weighted/unreachable", "balanced": "weighted/main", "wan_wanb": "failover/unreachable",
		"wanb_wan": "failover/unreachable", "balanced_sticky": "sticky/main"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("policies %v, want %v", types, want)
	}
	var rules []string
	for _, r := range o.Rules {
		rules = append(rules, r.Name+">"+r.Policy)
	}
	if got := strings.Join(rules, " "); got != "voip>wan_wanb https>balanced_sticky backup>wanb_wan rule5>wan_only" {
		t.Errorf("rules %s", got)
	}
	if o.Rules[0].DPort.String() != "{ 5060, 10000-20000 }" {
		t.Errorf("voip ports %s", o.Rules[0].DPort)
	}
	for _, want := range []string{"ipset streaming", "use_policy default", "wanb_wan: wan (metric 2) and wanb (metric 1)", "size \"84\"", "last_resort blackhole"} {
		if !slices.ContainsFunc(r.Notes, func(n Note) bool { return strings.Contains(n.Msg, want) }) {
			t.Errorf("no note says %q", want)
		}
	}
}

func TestMWAN3Errors(t *testing.T) {
	f, err := uci.Parse("m", []byte("config interface wan\n\toption enabled 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MWAN3(f, nil); err == nil || !strings.Contains(err.Error(), "no enabled interface") {
		t.Errorf("got %v", err)
	}
}

// FuzzMWAN3 checks that no mwan3 and network config makes the importer
// panic, and that what it imports is YAML the config loader reads back.
func FuzzMWAN3(f *testing.F) {
	for _, n := range []string{"default.uci", "twowan.uci"} {
		b, err := os.ReadFile("testdata/mwan3/" + n)
		if err != nil {
			f.Fatal(err)
		}
		nb, _ := os.ReadFile("testdata/mwan3/network.uci")
		f.Add(b, nb)
	}
	// Odd but parseable inputs: bad numbers, unknown references, an IPv6
	// target on a TCP tracker, an alias loop, hostnames, an empty policy.
	f.Add([]byte(`config interface wan
	option enabled yes
	option track_method nping-tcp
	list track_ip '2001:db8::1'
	list track_ip 192.0.2.1
	option reliability 9
	option interval x
	option down -1
config member m
	option interface nowhere
	option metric z
config policy p
	list use_member m
	list use_member missing
config rule r
	option dest_ip example.com
	option src_port 1:2:3
	option proto tcp
	option use_policy p
`), []byte("config interface wan\n\toption device '@wan'\n\toption proto static\n\toption ipaddr 192.0.2.9/24\n"))
	f.Fuzz(func(t *testing.T, m, n []byte) {
		mf, err := uci.Parse("mwan3", m)
		if err != nil {
			return
		}
		nf, err := uci.Parse("network", n)
		if err != nil {
			nf = nil
		}
		r, err := MWAN3(mf, nf)
		if err != nil {
			return
		}
		if _, err := parseYAMLOnly(r.YAML); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, r.YAML)
		}
	})
}

// parseYAMLOnly reads the YAML without validating it: fuzzed inputs may
// give configs that fail checks (a bad gateway), never broken YAML.
func parseYAMLOnly(b []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	_, _ = config.Parse("fuzz.yaml", b) // must not panic
	return v, nil
}

// TestMWAN3CatchAll: a rule without conditions is the default policy, and
// rules after it, which mwan3 never reaches for IPv4, are not imported.
func TestMWAN3CatchAll(t *testing.T) {
	src := `
config interface wan
	option enabled 1
	list track_ip 192.0.2.1
config interface wanb
	option enabled 1
	list track_ip 192.0.2.2
config member a
	option interface wan
config member b
	option interface wanb
config policy both
	list use_member a
	list use_member b
config policy only_a
	list use_member a
config rule first
	option proto tcp
	option dest_port 22
	option use_policy only_a
config rule everything
	option use_policy both
config rule late
	option proto tcp
	option dest_port 443
	option use_policy only_a
config rule late6
	option dest_ip 2001:db8::/32
	option use_policy only_a
`
	f, err := uci.Parse("m", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := MWAN3(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkResult(t, r)
	o := cfg.Outbound
	var names []string
	for _, x := range o.Rules {
		names = append(names, x.Name)
	}
	if o.DefaultPolicy != "both" || strings.Join(names, " ") != "first late6" {
		t.Errorf("default %s, rules %v; want both, [first late6]\n%s", o.DefaultPolicy, names, r.YAML)
	}
	if !strings.Contains(string(r.YAML), "    # - name: late\n") {
		t.Errorf("rule late is not written commented out:\n%s", r.YAML)
	}
}
