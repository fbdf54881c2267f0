package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	gobgp "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/bgp"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

func newTestDaemon(t *testing.T, yaml string) *Daemon {
	t.Helper()
	cfg, err := config.Parse("multihome.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const testLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
  - {name: isp2, interface: wan2, gateway4: 203.0.113.1, address4: 203.0.113.2}
api: {listen: "off"}
`

func TestBGPStatusWithoutBGP(t *testing.T) {
	d := newTestDaemon(t, testLinks)
	if ns, ok := d.BGPStatus(); ok || ns != nil {
		t.Errorf("BGPStatus() = %v, %v without a bgp section", ns, ok)
	}
	rep := d.Audit()
	if rep == nil || rep.Graph == nil || len(rep.Findings) == 0 {
		t.Fatalf("Audit() = %+v", rep)
	}
}

func TestBGPStatusWithBGP(t *testing.T) {
	d := newTestDaemon(t, testLinks+`
bgp:
  asn: 64500
  prefixes: [192.0.2.0/24]
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501}
    - {link: isp2, address: 203.0.113.1, asn: 64502}
`)
	ns, ok := d.BGPStatus()
	if !ok {
		t.Fatal("BGPStatus() says bgp is not configured")
	}
	// Not running: the speaker has no session yet.
	if len(ns) != 0 {
		t.Errorf("neighbours before Run: %+v", ns)
	}
}

// TestSpeakerStatus runs the BGP speaker against an in-process GoBGP
// router on loopback and reads its Status as the API does: the session
// comes up, the prefix is sent; the link fails and the announcement is
// withdrawn; the ISP goes away and the session leaves established.
func TestSpeakerStatus(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.21:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.21: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	isp := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), nil))
	go isp.Serve()
	ctx := context.Background()
	if err := isp.StartBgp(ctx, &gobgp.StartBgpRequest{Global: &gobgp.Global{Asn: 64501, RouterId: "127.0.0.21", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.21"}}}); err != nil {
		t.Fatal(err)
	}
	if err := isp.AddPeer(ctx, &gobgp.AddPeerRequest{Peer: &gobgp.Peer{
		Conf:      &gobgp.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: 64500},
		Transport: &gobgp.Transport{PassiveMode: true, LocalAddress: "127.0.0.21"},
	}}); err != nil {
		t.Fatal(err)
	}
	stopISP := sync.OnceFunc(func() { isp.StopBgp(context.Background(), &gobgp.StopBgpRequest{}); isp.Stop() })
	t.Cleanup(stopISP)

	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
links:
  - {name: wan1, interface: lo, gateway4: 127.0.0.21, address4: 127.0.0.2, probes: [{target: 127.0.0.1}]}
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  connect_retry: 1s
  damping: {disable: true}
  neighbors:
    - {link: wan1, address: 127.0.0.21, port: %d, asn: 64501, role: backup}
`, port)))
	if err != nil {
		t.Fatal(err)
	}
	src := apitest.NewFake(monitor.Status{Link: "wan1", Interface: "lo", State: monitor.Up, Health: monitor.Up})
	sp, err := bgp.New(cfg, src, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{subs: []*named{{name: "bgp", sub: sp}}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sp.Run(rctx) }()
	defer func() {
		cancel()
		<-done
	}()

	wait := func(what string, ok func(bgp.NeighborStatus) bool) bgp.NeighborStatus {
		t.Helper()
		var last []bgp.NeighborStatus
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			ns, configured := d.BGPStatus()
			if !configured {
				t.Fatal("BGPStatus says bgp is not configured")
			}
			last = ns
			if len(ns) == 1 && ok(ns[0]) {
				return ns[0]
			}
		}
		t.Fatalf("%s: neighbours %+v", what, last)
		return bgp.NeighborStatus{}
	}
	n := wait("established, prefix sent", func(n bgp.NeighborStatus) bool {
		return n.State == "established" && n.PrefixesSent == 1
	})
	if n.Neighbor.String() != "127.0.0.21" || n.Link != "wan1" || n.PeerAS != 64501 || !n.Announced || n.Withdrawn || n.Prepend != 3 || n.BFD != "" || n.Reason != "" {
		t.Errorf("established neighbour %+v", n)
	}
	if time.Since(n.Since) > 15*time.Second {
		t.Errorf("since %v", n.Since)
	}

	src.Update("wan1", "test: down", func(s *monitor.Status) { s.State, s.Health = monitor.Down, monitor.Down })
	wait("withdrawn", func(n bgp.NeighborStatus) bool { return n.Withdrawn && !n.Announced && n.PrefixesSent == 0 })

	stopISP()
	n = wait("session down", func(n bgp.NeighborStatus) bool { return n.State != "established" })
	t.Logf("after the ISP stopped: %+v", n)
}
