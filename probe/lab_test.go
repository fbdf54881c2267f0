package probe

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// probeIn runs one probe from inside the namespace: TCP, HTTP and DNS
// probes open their sockets on the calling goroutine's thread.
func probeIn(t *testing.T, ns string, p Prober, timeout time.Duration) (rtt time.Duration, err error) {
	t.Helper()
	if derr := netns.Do(ns, func() error {
		rtt, err = p.Probe(context.Background(), timeout)
		return nil
	}); derr != nil {
		t.Fatal(derr)
	}
	return rtt, err
}

func newIn(t *testing.T, ns string, p config.Probe, b Binding) Prober {
	t.Helper()
	var pr Prober
	if err := netns.Do(ns, func() error {
		var err error
		pr, err = New(p, b)
		return err
	}); err != nil {
		t.Fatalf("New(%+v): %v", p, err)
	}
	t.Cleanup(func() { pr.Close() })
	return pr
}

// TestLabProbesBoundToLink runs every probe type through each ISP of a
// lab, then blackholes ISP 1: probes bound to wan1 fail while those bound
// to wan2 still succeed, although the main table prefers wan1.
func TestLabProbesBoundToLink(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	gw := l.NS(lab.RoleGW)
	probes := []config.Probe{
		{Type: config.ProbeICMP, Target: lab.ProbeTarget1},
		{Type: config.ProbeICMP, Target: lab.ProbeTarget61},
		{Type: config.ProbeTCP, Target: lab.HTTPServer + ":80"},
		{Type: config.ProbeTCP, Target: lab.HTTPServer + ":9"}, // refused: reachable
		{Type: config.ProbeHTTP, Target: lab.HTTPServer, Path: "/health", Host: "probe.example"},
		{Type: config.ProbeHTTP, Target: "[" + lab.HTTPServer6 + "]", Path: "/health"},
		{Type: config.ProbeDNS, Target: lab.DNSServer, Query: "example.com"},
		{Type: config.ProbeDNS, Target: lab.DNSServer6},
	}
	bind := func(isp lab.ISP) Binding {
		return Binding{Interface: isp.WAN, Mark: 0x10000, Source4: isp.GW, Source6: isp.GW6}
	}
	byISP := map[string][]Prober{}
	for _, isp := range l.ISPs {
		for _, p := range probes {
			byISP[isp.Name] = append(byISP[isp.Name], newIn(t, gw, p, bind(isp)))
		}
	}
	for _, isp := range l.ISPs {
		for _, pr := range byISP[isp.Name] {
			if rtt, err := probeIn(t, gw, pr, time.Second); err != nil || rtt <= 0 {
				t.Errorf("%s %s %s: rtt %v err %v", isp.WAN, pr.Type(), pr.Target(), rtt, err)
			}
		}
	}
	// The servers saw the probes from each link's own address.
	seen := l.SeenSources()
	for _, isp := range l.ISPs {
		if seen[isp.GW.String()] == 0 || seen[isp.GW6.String()] == 0 {
			t.Errorf("servers saw no probe from %s / %s: %v", isp.GW, isp.GW6, seen)
		}
	}

	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole}); err != nil {
		t.Fatal(err)
	}
	for _, pr := range byISP["isp1"] {
		start := time.Now()
		_, err := probeIn(t, gw, pr, 150*time.Millisecond)
		if err == nil {
			t.Errorf("wan1 %s %s succeeded through a blackhole", pr.Type(), pr.Target())
		} else if !errors.Is(err, ErrTimeout) {
			t.Logf("wan1 %s %s: %v", pr.Type(), pr.Target(), err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Errorf("wan1 %s %s: failure took %v with a 150ms timeout", pr.Type(), pr.Target(), d)
		}
	}
	for _, pr := range byISP["isp2"] {
		if _, err := probeIn(t, gw, pr, time.Second); err != nil {
			t.Errorf("wan2 %s %s during isp1 blackhole: %v", pr.Type(), pr.Target(), err)
		}
	}
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	for _, pr := range byISP["isp1"] {
		if _, err := probeIn(t, gw, pr, time.Second); err != nil {
			t.Errorf("wan1 %s %s after restore: %v", pr.Type(), pr.Target(), err)
		}
	}
}

// TestLabICMPConcurrent checks reply matching: two probers to one target,
// many overlapping probes each, every reply goes to its own probe; a
// target that does not exist times out.
func TestLabICMPConcurrent(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	gw := l.NS(lab.RoleGW)
	isp := l.ISPs[0]
	b := Binding{Interface: isp.WAN, Source4: isp.GW}
	a := newIn(t, gw, config.Probe{Target: lab.ProbeTarget1}, b)
	c := newIn(t, gw, config.Probe{Target: lab.ProbeTarget1}, b)
	dead := newIn(t, gw, config.Probe{Target: "203.0.113.99"}, b)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 20 {
		for _, p := range []Prober{a, c} {
			wg.Go(func() {
				if _, err := p.Probe(context.Background(), time.Second); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Go(func() {
		if _, err := dead.Probe(context.Background(), 200*time.Millisecond); err == nil {
			errs <- errors.New("probe of a missing target succeeded")
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// After Close, probes fail at once.
	a.Close()
	if _, err := a.Probe(context.Background(), time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("probe after close: %v", err)
	}
	// A prober bound to an interface that does not exist cannot be made.
	if err := netns.Do(gw, func() error {
		_, err := New(config.Probe{Target: lab.ProbeTarget1}, Binding{Interface: "nosuch0"})
		return err
	}); err == nil {
		t.Error("prober bound to a missing interface was made")
	}
}
