package importer

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestPfSenseSamples(t *testing.T) {
	for _, name := range []string{"failover", "loadbalance"} {
		t.Run(name, func(t *testing.T) {
			p := "testdata/pfsense/" + name + ".xml"
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r, err := PfSense(p, data)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, r)
			golden(t, "pfsense/"+name+".golden.yaml", r.YAML)
			// Every field of a gateway item or group is mapped or noted.
			root, _ := parseXML(p, data)
			noted := map[string]bool{}
			for _, n := range r.Notes {
				noted[n.Pos] = true
			}
			items := append(root.path("gateways").all("gateway_item"), root.path("OPNsense/Gateways").all("gateway_item")...)
			for _, g := range items {
				for _, c := range g.children {
					if slices.Contains(pfMapped, c.name) || root.name == "opnsense" && (c.text == "" || c.text == "0") {
						continue
					}
					if !noted[fmt.Sprintf("%s:%d", p, c.line)] {
						t.Errorf("%s:%d: gateway %s field %s is neither mapped nor noted", p, c.line, g.get("name"), c.name)
					}
				}
			}
		})
	}
}

func TestPfSenseFailover(t *testing.T) {
	data, _ := os.ReadFile("testdata/pfsense/failover.xml")
	r, err := PfSense("failover.xml", data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkResult(t, r)
	wan, wan2 := cfg.LinkByName("WAN_DHCP"), cfg.LinkByName("WAN2GW")
	if len(cfg.Links) != 2 || wan == nil || wan2 == nil {
		t.Fatalf("links %+v: want WAN_DHCP (with WAN_DHCP6 merged) and WAN2GW", cfg.Links)
	}
	if wan.Interface != "igb0" || wan.Priority != 1 || wan2.Priority != 2 || wan2.Gateway4.String() != "198.51.100.17" {
		t.Errorf("wan %+v wan2 %+v", wan, wan2)
	}
	if wan.Health.Interval.D().String() != "1s" || wan.Health.Degraded.RTT.D().String() != "300ms" || float64(wan.Health.Degraded.Loss) != 0.15 {
		t.Errorf("WAN_DHCP thresholds %+v", wan.Health)
	}
	if wan2.Health.Timeout.D().String() != "1.5s" || wan2.Health.Window.D().String() != "30s" {
		t.Errorf("WAN2GW loss_interval/time_period %+v", wan2.Health)
	}
	o := cfg.Outbound
	if o.DefaultPolicy != "WANFailover" || o.Policies[0].Type != "failover" {
		t.Errorf("default %s, policies %+v", o.DefaultPolicy, o.Policies)
	}
	var rules []string
	for _, r := range o.Rules {
		rules = append(rules, fmt.Sprintf("%s>%s migrate=%v src=%v", r.Name, r.Policy, r.MigrateOnRecovery, r.Src))
	}
	want := "pf1700000001>WAN2GW migrate=false src=[192.168.1.50/32] | pf0100000101>WANFailover migrate=true src=[192.168.1.0/24]"
	if got := strings.Join(rules, " | "); got != want {
		t.Errorf("rules\n%s\nwant\n%s", got, want)
	}
	for _, want := range []string{`alias "Office_VPN_peers"`, "latencylow 150", "alert_interval", "dynamic"} {
		if !slices.ContainsFunc(r.Notes, func(n Note) bool { return strings.Contains(n.Msg, want) }) {
			t.Errorf("no note says %q", want)
		}
	}
}

func TestPfSenseLoadBalance(t *testing.T) {
	data, _ := os.ReadFile("testdata/pfsense/loadbalance.xml")
	r, err := PfSense("loadbalance.xml", data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := checkResult(t, r)
	a, b := cfg.LinkByName("WAN_GW"), cfg.LinkByName("WAN2_GW")
	if a.Weight != 2 || b.Weight != 1 || a.Priority != b.Priority {
		t.Errorf("weights %d:%d priorities %d/%d, want 2:1 in one tier", a.Weight, b.Weight, a.Priority, b.Priority)
	}
	o := cfg.Outbound
	if o.Policies[0].Name != "LoadBalance" || o.Policies[0].Type != "weighted" || o.DefaultPolicy != "WAN_GW" {
		t.Errorf("policies %+v default %s", o.Policies, o.DefaultPolicy)
	}
	if len(o.Rules) != 1 || o.Rules[0].IIF != "vtnet2" || o.Rules[0].Src[0].String() != "192.168.10.0/24" {
		t.Errorf("rules %+v", o.Rules)
	}
}

func TestPfSenseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<pfsense><gateways>", "x.xml:1: XML syntax"},
		{"<html/>", "root element <html>"},
		{"<pfsense><gateways></gateways></pfsense>", "no enabled gateway"},
		{"", "no XML element"},
	} {
		_, err := PfSense("x.xml", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}

// FuzzPfSense checks that no config.xml makes the importer panic, and
// that what it imports is YAML the config loader reads back.
func FuzzPfSense(f *testing.F) {
	for _, n := range []string{"failover", "loadbalance"} {
		b, err := os.ReadFile("testdata/pfsense/" + n + ".xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := PfSense("fuzz.xml", b)
		if err != nil {
			return
		}
		if _, err := parseYAMLOnly(r.YAML); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, r.YAML)
		}
	})
}
