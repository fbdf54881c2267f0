package bgp

import (
	"fmt"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
	mhroute "github.com/multihome/multihome/route"
)

// TestLabImportPrefixes is the example against FRR: ISP 1 sends
// its default route, 203.0.113.0/24, two more specifics of it and
// 198.51.100.128/25; import_prefixes [0.0.0.0/0, 203.0.113.0/24] imports
// exactly the default and the /24 (before, every route was imported: all
// are inside 0.0.0.0/0). ISP 2 sends the same; its ranges
// "203.0.113.0/24 ge 25 le 25" and "198.51.100.0/24 orlonger" take exactly
// 203.0.113.0/25 and 198.51.100.128/25.
func TestLabImportPrefixes(t *testing.T) {
	frrAvailable(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	sent := []string{"203.0.113.0/24", "203.0.113.0/25", "203.0.113.128/26", "198.51.100.128/25"}
	startFRR(t, l.NS("isp1"), frrName(l, "isp1"), frrImportISP(1, sent, nil), "bgpd")
	startFRR(t, l.NS("isp2"), frrName(l, "isp2"), frrImportISP(2, sent, nil), "bgpd")
	c := startSpeaker(t, l, labYAML(fmt.Sprintf(`bgp:
  asn: 64500
  prefixes: [%s]
  connect_retry: 1s
  neighbors:
    - {link: wan1, address: 198.51.100.1, asn: 64501, import: full, import_prefixes: [0.0.0.0/0, 203.0.113.0/24]}
    - {link: wan2, address: 198.51.100.17, asn: 64502, import: full, import_prefixes: [203.0.113.0/24 ge 25 le 25, 198.51.100.0/24 orlonger]}
`, sitePrefix4)))
	h, err := netns.Handle(l.NS(lab.RoleGW))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c.wait(10*time.Second, "wan1 up", isState("wan1", monitor.Up))
	via1 := " via 198.51.100.1 dev wan1 metric 2048"
	via2 := " via 198.51.100.17 dev wan2 metric 2048"
	at := waitTable(t, h, mhroute.DefaultScheme.Table(0), []string{"0.0.0.0/0" + via1, "203.0.113.0/24" + via1}, 20*time.Second)
	waitTable(t, h, mhroute.DefaultScheme.Table(1), []string{"203.0.113.0/25" + via2, "198.51.100.128/25" + via2}, 10*time.Second)
	// Stable: nothing more arrives later.
	time.Sleep(time.Second)
	waitTable(t, h, mhroute.DefaultScheme.Table(0), []string{"0.0.0.0/0" + via1, "203.0.113.0/24" + via1}, time.Second)
	t.Logf("wan1 table holds exactly the default and 203.0.113.0/24 (of 5 routes sent) since %s", at.Format("15:04:05.000"))
}
