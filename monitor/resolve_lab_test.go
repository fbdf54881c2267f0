package monitor

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// TestLabHostNameProbes probes each link with HTTP to a host name,
// resolved through the link itself by the lab core's DNS server (TTL 5 s):
// both links come up; a blackhole of isp1 takes wan1 down (neither its
// resolver nor the web server is reachable through it) while wan2 stays
// up; the restore brings wan1 back. The core's servers see the queries
// and requests come from each link's own address.
func TestLabHostNameProbes(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	const host = "www.example.com"
	resolver := config.Resolver{AddrPort: netip.AddrPortFrom(netip.MustParseAddr(lab.DNSServer), 53)}
	cfg := &config.Config{}
	for _, isp := range l.ISPs {
		cfg.Links = append(cfg.Links, config.Link{
			Name: isp.WAN, Interface: isp.WAN, Gateway4: isp.Router,
			Resolvers: []config.Resolver{resolver},
			Probes:    []config.Probe{{Type: config.ProbeHTTP, Target: host, Path: "/health"}},
		})
	}
	l.ResetSeen()
	c := startChild(t, l, cfg)
	for _, lc := range cfg.Links {
		if !c.seenState(lc.Name, Up) {
			c.wait(10*time.Second, lc.Name+" up", isState(lc.Name, Up))
		}
	}
	dnsSeen, httpSeen := l.SeenBy(lab.ServiceDNS), l.SeenBy(lab.ServiceHTTP)
	for _, isp := range l.ISPs {
		if dnsSeen[isp.GW.String()] == 0 || httpSeen[isp.GW.String()] == 0 {
			t.Errorf("%s: queries %v, requests %v: want both from %s", isp.WAN, dnsSeen, httpSeen, isp.GW)
		}
	}
	t.Logf("up: dns queries by source %v, http requests by source %v", dnsSeen, httpSeen)

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	l.ResetSeen()
	down := c.wait(5*time.Second, "wan1 down", isState("wan1", Down))
	t.Logf("blackhole detected in %v: %s", down.Time.Sub(at).Round(time.Millisecond), down.Reason)
	// Once the cached answer expires (TTL 5 s), the lookups through wan1
	// time out: the target's last error says so.
	wantErr := "resolve " + host + " via " + lab.DNSServer + " on wan1: timeout"
	var lastErr string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st := c.snapshot()
		if lastErr = st[0].Targets[0].LastError; lastErr == wantErr {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if lastErr != wantErr {
		t.Errorf("wan1 target's last error %q, want %q", lastErr, wantErr)
	}
	st := c.snapshot()
	if st[0].State != Down || st[1].State != Up {
		t.Errorf("during the blackhole: wan1 %v, wan2 %v; want down, up", st[0].State, st[1].State)
	}
	// wan2 kept resolving (its cache expires too, a little after wan1's)
	// through its own link; nothing came through the blackholed isp1.
	isp1, isp2 := l.ISPs[0], l.ISPs[1]
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if dnsSeen = l.SeenBy(lab.ServiceDNS); dnsSeen[isp2.GW.String()] > 0 {
			break
		}
	}
	dnsSeen = l.SeenBy(lab.ServiceDNS)
	if dnsSeen[isp2.GW.String()] == 0 || dnsSeen[isp1.GW.String()] != 0 {
		t.Errorf("queries during the blackhole %v: want some from %s, none from %s", dnsSeen, isp2.GW, isp1.GW)
	}

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	up := c.wait(15*time.Second, "wan1 up", isState("wan1", Up))
	t.Logf("wan1 up %v after the restore", up.Time.Sub(restored).Round(time.Millisecond))
	if n := l.SeenBy(lab.ServiceDNS)[isp1.GW.String()]; n == 0 {
		t.Errorf("wan1 up again without a query through it: %v", l.SeenBy(lab.ServiceDNS))
	}
	for _, e := range c.seen {
		if e.Link == "wan2" && e.Kind == StateChanged && e.To != Up {
			t.Errorf("wan2 changed: %s→%s %s", e.From, e.To, e.Reason)
		}
		if e.Link == "wan1" && e.Kind == StateChanged && e.To == Down && !strings.Contains(e.Reason, "failed") {
			t.Logf("wan1 down reason: %s", e.Reason)
		}
	}
}
