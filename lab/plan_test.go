package lab

import (
	"net/netip"
	"testing"
)

var docPrefixes = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func inDoc(a netip.Addr) bool {
	for _, p := range docPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func TestPlanISP(t *testing.T) {
	isp1, isp2 := PlanISP(1), PlanISP(2)
	for _, c := range []struct{ got, want string }{
		{isp1.Link.String(), "198.51.100.0/28"},
		{isp1.Router.String(), "198.51.100.1"},
		{isp1.GW.String(), "198.51.100.2"},
		{isp1.Link6.String(), "2001:db8:1::/64"},
		{isp1.Router6.String(), "2001:db8:1::1"},
		{isp1.GW6.String(), "2001:db8:1::2"},
		{isp1.Aggregate6.String(), "2001:db8:1::/48"},
		{isp1.Delegated6.String(), "2001:db8:1:100::/64"},
		{isp1.Uplink.String(), "198.51.100.128/28"},
		{isp1.UplinkPeer.String(), "198.51.100.129"},
		{isp1.UplinkRouter.String(), "198.51.100.130"},
		{isp1.Uplink6.String(), "2001:db8:ff00:1::/64"},
		{isp1.UplinkRouter6.String(), "2001:db8:ff00:1::2"},
		{isp2.Link.String(), "198.51.100.16/28"},
		{isp2.Router.String(), "198.51.100.17"},
		{isp2.GW.String(), "198.51.100.18"},
		{isp2.GW6.String(), "2001:db8:2::2"},
		{isp2.Uplink.String(), "198.51.100.144/28"},
		{isp2.WAN, "wan2"},
		{isp2.Name, "isp2"},
		{PlanISP(8).Uplink.String(), "198.51.100.240/28"},
		{PlanHost(1).Addr.String(), "192.0.2.10/25"},
		{PlanHost(1).Addr6.String(), "2001:db8:100::10/64"},
		{PlanHost(16).Addr.String(), "192.0.2.25/25"},
		{PlanHost(16).Addr6.String(), "2001:db8:100::25/64"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
	if isp2.Metric != 200 {
		t.Errorf("ISP 2 metric %d", isp2.Metric)
	}

	// Every network is a documentation prefix, and no two overlap.
	nets := []netip.Prefix{
		netip.MustParsePrefix(LANPrefix), netip.MustParsePrefix(LANPrefix6),
		netip.MustParsePrefix(UpstreamLink), netip.MustParsePrefix(UpstreamLink6),
	}
	for k := 1; k <= MaxISPs; k++ {
		isp := PlanISP(k)
		nets = append(nets, isp.Link, isp.Link6, isp.Uplink, isp.Uplink6, isp.Delegated6)
		for _, a := range []netip.Addr{isp.Router, isp.GW, isp.UplinkPeer, isp.UplinkRouter} {
			if !isp.Link.Contains(a) && !isp.Uplink.Contains(a) {
				t.Errorf("ISP %d: %s outside its networks", k, a)
			}
		}
		if !isp.Aggregate6.Contains(isp.Link6.Addr()) || !isp.Aggregate6.Contains(isp.Delegated6.Addr()) {
			t.Errorf("ISP %d: aggregate %s misses its /64s", k, isp.Aggregate6)
		}
	}
	for i, a := range nets {
		if !inDoc(a.Addr()) {
			t.Errorf("%s is not a documentation prefix", a)
		}
		for _, b := range nets[i+1:] {
			if a.Overlaps(b) {
				t.Errorf("%s overlaps %s", a, b)
			}
		}
	}
	for _, a := range DefaultServers.All() {
		if !inDoc(a) {
			t.Errorf("server %s is not a documentation address", a)
		}
		for _, n := range nets {
			if n.Contains(a) {
				t.Errorf("server %s inside link network %s", a, n)
			}
		}
	}
}

func TestSpecDefaults(t *testing.T) {
	s, err := Spec{Name: "demo"}.withDefaults()
	if err != nil || s.ISPs != 2 || s.LANHosts != 1 {
		t.Errorf("defaults = %+v, %v", s, err)
	}
	for _, bad := range []Spec{
		{},
		{Name: "a-b"},
		{Name: "toolongtoolongtoolong1"},
		{Name: "x", ISPs: 9},
		{Name: "x", ISPs: -1},
		{Name: "x", LANHosts: 17},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("spec %+v accepted", bad)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		fmt  string
	}{
		{"5Mbit", 625000, "5Mbit"},
		{"2mbit", 250000, "2Mbit"},
		{"500kbit", 62500, "500kbit"},
		{"1gbit", 125000000, "1Gbit"},
		{"1mbps", 1000000, "8Mbit"},
		{"1.5Mbit", 187500, "1500kbit"},
		{"8000", 1000, "8kbit"},
	} {
		got, err := ParseRate(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
		if f := FormatRate(got); f != c.fmt {
			t.Errorf("FormatRate(%d) = %q, want %q", got, f, c.fmt)
		}
	}
	for _, bad := range []string{"", "Mbit", "5 furlongs", "-1mbit", "10bit"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestParseFault(t *testing.T) {
	for _, in := range []string{"carrier-down", "blackhole", "loss=50", "rate=5Mbit"} {
		f, err := ParseFault(in)
		if err != nil {
			t.Errorf("ParseFault(%q): %v", in, err)
			continue
		}
		if f.String() != in {
			t.Errorf("ParseFault(%q).String() = %q", in, f)
		}
	}
	for _, bad := range []string{"", "loss", "loss=0", "loss=101", "rate=fast", "blackhole=1", "flood"} {
		if f, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) = %+v, want error", bad, f)
		}
	}
}
