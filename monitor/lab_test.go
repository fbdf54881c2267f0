package monitor

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

// These tests run the monitor in the gateway namespace of a lab (see
// startChild) against real kernels, probes and faults. They need root.

// labConfig returns a config with one link per ISP of l, named after its
// interface, probing targets (default: the lab's three probe targets).
// Addresses are left for the monitor to learn from the interfaces.
func labConfig(l *lab.Lab, h config.Health, targets ...string) *config.Config {
	if len(targets) == 0 {
		targets = []string{lab.ProbeTarget1, lab.ProbeTarget2, lab.ProbeTarget3}
	}
	cfg := &config.Config{}
	for _, isp := range l.ISPs {
		lc := config.Link{Name: isp.WAN, Interface: isp.WAN, Gateway4: isp.Router, Health: h}
		for _, t := range targets {
			lc.Probes = append(lc.Probes, config.Probe{Type: config.ProbeICMP, Target: t})
		}
		cfg.Links = append(cfg.Links, lc)
	}
	return cfg
}

func isState(link string, to State) func(Event) bool {
	return func(e Event) bool { return e.Kind == StateChanged && e.Link == link && e.To == to }
}

// upAll waits until every link of cfg is up.
func (c *child) upAll(cfg *config.Config) {
	c.t.Helper()
	for _, l := range cfg.Links {
		if !c.seenState(l.Name, Up) {
			c.wait(5*time.Second, l.Name+" up", isState(l.Name, Up))
		}
	}
}

func (c *child) seenState(link string, s State) bool {
	for _, e := range c.seen {
		if e.Kind == StateChanged && e.Link == link && e.To == s {
			return true
		}
	}
	return false
}

func TestLabBlackhole(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	// Two IPv4 targets and one IPv6 target.
	cfg := labConfig(l, config.Health{}, lab.ProbeTarget1, lab.ProbeTarget2, lab.ProbeTarget61)
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	time.Sleep(time.Second) // let the RTT estimates (and timeouts) settle
	if st := c.snapshot(); st[0].TargetsUp != 3 || st[1].TargetsUp != 3 {
		t.Fatalf("targets up before the fault: %d, %d; want 3, 3", st[0].TargetsUp, st[1].TargetsUp)
	}

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := c.wait(3*time.Second, "wan1 down", isState("wan1", Down))
	took := down.Time.Sub(at)
	t.Logf("blackhole detected in %v: %s", took.Round(time.Millisecond), down.Reason)
	// DownAfter × interval + timeout = 3 × 200ms + 100ms, with margin.
	if took > 1500*time.Millisecond {
		t.Errorf("blackhole detected after %v, want < 1.5s", took)
	}
	if !strings.Contains(down.Reason, "consecutive failed probes") || !strings.Contains(down.Reason, "0/3 targets answering") {
		t.Errorf("reason %q", down.Reason)
	}
	// Down on its probes' failures, the status shows them as loss (the
	// streak that took it down: 3 of the window's probes, or more).
	if down.Status.State != Down || down.Status.Health != Down || down.Status.Loss == 0 {
		t.Errorf("status %+v", down.Status)
	}
	time.Sleep(time.Second)

	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	hd := c.wait(3*time.Second, "wan1 hold-down", func(e Event) bool {
		if e.Link == "wan1" && e.Kind == StateChanged {
			t.Fatalf("wan1 changed state before its hold-down: %s→%s %s", e.From, e.To, e.Reason)
		}
		return e.Link == "wan1" && e.Kind == HoldDownStarted
	})
	if !hd.Status.HoldDown || hd.Status.State != Down {
		t.Errorf("hold-down status: hold_down %v state %v", hd.Status.HoldDown, hd.Status.State)
	}
	up := c.wait(4*time.Second, "wan1 up", isState("wan1", Up))
	t.Logf("recovered: hold-down started %v after restore, up %v after that",
		hd.Time.Sub(restored).Round(time.Millisecond), up.Time.Sub(hd.Time).Round(time.Millisecond))
	if d := up.Time.Sub(hd.Time); d < 2*time.Second {
		t.Errorf("up %v after the hold-down started, before the 2s hold-down", d)
	}
	// 5 successes at 15/s take ≥ 4 probe slots (267 ms); a loaded
	// machine's late probe can be sent at once after a delay, so the bound
	// allows 3 slots, well above what 1 or 2 successes would take.
	if d := hd.Time.Sub(restored); d < 3*time.Second/15 {
		t.Errorf("hold-down started %v after restore: fewer than UpAfter probes", d)
	}
	// wan2 never moved.
	for _, e := range c.seen {
		if e.Link == "wan2" && e.Kind == StateChanged && e.To != Up {
			t.Errorf("wan2 changed: %s→%s %s", e.From, e.To, e.Reason)
		}
	}
}

func TestLabCarrierLoss(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	h := config.Health{HoldDown: config.Duration(500 * time.Millisecond)}
	cfg := labConfig(l, h)
	c := startChild(t, l, cfg)
	c.upAll(cfg)

	start := time.Now()
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.CarrierDown}); err != nil {
		t.Fatal(err)
	}
	down := c.wait(2*time.Second, "wan1 down", isState("wan1", Down))
	took := down.Time.Sub(start)
	t.Logf("carrier loss detected in %v (from the start of the fault): %s", took, down.Reason)
	if took > 250*time.Millisecond {
		t.Errorf("carrier loss detected after %v, want < 250ms", took)
	}
	if down.Reason != "carrier lost on wan1" || down.Status.Carrier {
		t.Errorf("reason %q carrier %v", down.Reason, down.Status.Carrier)
	}
	time.Sleep(500 * time.Millisecond)
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	// Carrier back is not enough: probes must prove the link.
	c.wait(3*time.Second, "wan1 hold-down", func(e Event) bool {
		if e.Link == "wan1" && e.Kind == StateChanged {
			t.Fatalf("wan1 changed state before its hold-down: %s→%s %s", e.From, e.To, e.Reason)
		}
		return e.Link == "wan1" && e.Kind == HoldDownStarted
	})
	up := c.wait(3*time.Second, "wan1 up", isState("wan1", Up))
	if !up.Status.Carrier {
		t.Error("up without carrier")
	}
}

func TestLabDeadTarget(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	// 203.0.113.99 does not exist in the lab: one dead target of three.
	cfg := labConfig(l, config.Health{}, lab.ProbeTarget1, lab.ProbeTarget2, "203.0.113.99")
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	if evs := c.quiet(4 * time.Second); len(evs) > 0 {
		t.Errorf("events with one dead target: %s", c.history())
	}
	st := c.snapshot()[0]
	if st.State != Up || st.TargetsUp != 2 || st.Targets[2].Up || st.Targets[2].Lost == 0 || st.Loss != 0 {
		t.Errorf("status: state %v, targets up %d, dead target %+v, link loss %v", st.State, st.TargetsUp, st.Targets[2], st.Loss)
	}
	if st.Targets[0].RTT <= 0 || st.RTTP95 <= 0 {
		t.Errorf("no RTT measured: %+v", st)
	}
}

func TestLabRandomLoss(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	cfg := labConfig(l, config.Health{})
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	time.Sleep(time.Second)
	// 16 % per direction: a probe round trip is lost with probability
	// 1 - 0.84² ≈ 29.4 %.
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.Loss, LossPercent: 16}); err != nil {
		t.Fatal(err)
	}
	// Settle: the link ends up degraded (at its onset the loss may look
	// like an outage once, which the hold-down then resolves).
	deadline := time.Now().Add(20 * time.Second)
	for {
		if e, ok := c.next(time.Until(deadline)); !ok {
			t.Fatalf("not degraded within 20s: %s", c.history())
		} else if e.Kind == StateChanged && e.To == Degraded {
			break
		}
	}
	// Then no transition for 10 s.
	if evs := c.quiet(10 * time.Second); len(evs) > 0 {
		t.Errorf("transitions after settling: %s", c.history())
	}
	st := c.snapshot()[0]
	t.Logf("under loss: state %v, loss %.1f%%, rtt p50 %v", st.State, 100*st.Loss, st.RTTP50)
	if st.State != Degraded || st.Loss < 0.15 || st.Loss > 0.45 {
		t.Errorf("final state %v, loss %.2f", st.State, st.Loss)
	}
}

func TestLabSaturation(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	cfg := labConfig(l, config.Health{Saturation: config.Saturation{After: config.Duration(time.Second)}})
	for i := range cfg.Links {
		cfg.Links[i].Capacity = config.Capacity{Down: 8_000_000, Up: 8_000_000}
	}
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	if _, err := l.Fault("isp1", lab.Fault{Kind: lab.RateLimit, Rate: "8Mbit"}); err != nil {
		t.Fatal(err)
	}
	// Download 4 MB through wan1 from the gateway itself: about 4 s at
	// 8 Mbit/s, bounded by the context.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := l.Get(ctx, lab.RoleGW, "wan1", fmt.Sprintf("/bytes?n=%d", 4<<20))
		errc <- err
	}()
	sat := c.wait(5*time.Second, "wan1 saturated", func(e Event) bool {
		return e.Kind == SaturationChanged && e.Link == "wan1" && e.Status.Saturated
	})
	t.Logf("saturated: %s", sat.Reason)
	if sat.Status.UtilDown < 0.9 || sat.Status.RateDown < 7_000_000 {
		t.Errorf("status at saturation: rate down %d util %.2f", sat.Status.RateDown, sat.Status.UtilDown)
	}
	if err := <-errc; err != nil {
		t.Fatalf("download: %v", err)
	}
	clear := c.wait(4*time.Second, "wan1 saturation cleared", func(e Event) bool {
		return e.Kind == SaturationChanged && e.Link == "wan1" && !e.Status.Saturated
	})
	t.Logf("cleared: %s", clear.Reason)
	for _, e := range c.seen {
		if e.Link == "wan2" && e.Kind == SaturationChanged {
			t.Errorf("idle wan2 saturated: %s", e.Reason)
		}
		// A full tbf queue drops probes too: wan1 may degrade, not fail.
		if e.Kind == StateChanged && e.To == Down || e.Link == "wan2" && e.Kind == StateChanged && e.To != Up {
			t.Errorf("%s went %s during the download: %s", e.Link, e.To, e.Reason)
		}
	}
	st := c.snapshot()
	if st[1].Saturated || st[1].UtilDown > 0.1 {
		t.Errorf("wan2 status %+v", st[1])
	}
}

// TestLabAddressChange moves wan1 to another address: the monitor learns
// it from netlink and rebinds its probes, which the core then sees coming
// from the new address, without the link going down.
func TestLabAddressChange(t *testing.T) {
	l := labtest.Up(t, lab.Spec{ISPs: 1})
	cfg := labConfig(l, config.Health{}, lab.ProbeTarget1, lab.ProbeTarget2)
	// A TCP probe: the lab's echo server records where it came from.
	cfg.Links[0].Probes = append(cfg.Links[0].Probes, config.Probe{Type: config.ProbeTCP, Target: lab.EchoServer + ":7"})
	heard := listenGroups(t, l.NS(lab.RoleGW))
	c := startChild(t, l, cfg)
	c.upAll(cfg)
	isp := l.ISPs[0]
	h, err := netns.Handle(l.NS(lab.RoleGW))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(isp.WAN)
	if err != nil {
		t.Fatal(err)
	}
	// Without promote_secondaries, deleting the primary address deletes
	// the secondary one too (this is the lab's gateway namespace).
	if out, err := l.Run(context.Background(), lab.RoleGW, "sysctl", "-qw", "net.ipv4.conf."+isp.WAN+".promote_secondaries=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	moved := isp.GW.Next() // 198.51.100.3, in the same /28
	newAddr := &netlink.Addr{IPNet: &net.IPNet{IP: moved.AsSlice(), Mask: net.CIDRMask(isp.Link.Bits(), 32)}}
	oldAddr := &netlink.Addr{IPNet: &net.IPNet{IP: isp.GW.AsSlice(), Mask: net.CIDRMask(isp.Link.Bits(), 32)}}
	if err := h.AddrAdd(link, newAddr); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(link, oldAddr); err != nil {
		t.Fatal(err)
	}
	l.ResetSeen()
	evs := c.quiet(2 * time.Second)
	for _, e := range evs {
		if e.Kind == StateChanged {
			t.Errorf("state change while the address moved: %s→%s %s", e.From, e.To, e.Reason)
		}
	}
	seen := l.SeenSources()
	if seen[moved.String()] == 0 || seen[isp.GW.String()] > 0 {
		t.Errorf("probe sources after the move: %v, want only %s", seen, moved)
	}
	st := c.snapshot()[0]
	if st.State != Up || st.TargetsUp != 3 {
		t.Errorf("after the move: state %v, %d targets up", st.State, st.TargetsUp)
	}
	// The monitor's subscriptions and listings send nothing to the other
	// subscribers of the namespace (they reported "Wrong sender portid").
	kernel, others := heard()
	if kernel == 0 {
		t.Error("the listener heard nothing from the kernel: it cannot tell")
	}
	for _, o := range others {
		t.Errorf("another subscriber of the namespace received %s", o)
	}
}

// listenGroups subscribes a netlink socket in namespace ns to the link
// and address groups, as any other program there may. heard stops it and
// returns how many messages came from the kernel, and the others.
func listenGroups(t *testing.T, ns string) (heard func() (kernel int, others []string)) {
	t.Helper()
	var s *nl.NetlinkSocket
	err := netns.Do(ns, func() error {
		var err error
		s, err = nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	kernel, others := 0, []string(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, from, err := s.Receive()
			if err != nil {
				return // closed
			}
			mu.Lock()
			for _, m := range msgs {
				if from.Pid == nl.PidKernel {
					kernel++
				} else {
					others = append(others, fmt.Sprintf("message type %d flags %#x from port %d", m.Header.Type, m.Header.Flags, from.Pid))
				}
			}
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			s.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return func() (int, []string) {
		stop()
		mu.Lock()
		defer mu.Unlock()
		return kernel, others
	}
}
