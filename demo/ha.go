package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

// haFlows is how many TCP flows the HA scene holds through the master.
const haFlows = 50

// haScene is the demo's last scene, on a lab of its own: two gateways
// sharing the LAN and both uplinks, each running multihome with an ha
// section (keepalived and conntrackd as its children). The master "loses
// power" (frozen, every interface down, killed) while a LAN host holds
// TCP flows through it; the scene shows when new connections work again
// through the standby and how many held flows survived, then powers the
// node on again: it stays standby (preemption off).
func (d *demo) haScene(ctx context.Context, dir string, logs io.Writer) error {
	d.say("HA: building a second lab: two gateways (gwa, gwb) on one LAN switch and both ISPs' handoffs, a sync link between them")
	p, err := lab.UpPair(ctx, lab.Spec{Name: netns.Unique(demoPrefix, ""), ISPs: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer p.Down()
	procs := map[string]*exec.Cmd{}
	start := func(i int) error {
		n := p.Nodes[i]
		path := filepath.Join(dir, "ha-"+n.Role+".yaml")
		if err := os.WriteFile(path, []byte(p.PairConfig(i, filepath.Join(dir, "ha-run-"+n.Role), "100ms")), 0o600); err != nil {
			return err
		}
		cmd := p.Run(context.Background(), n.Role, d.multihome, "run", "--config", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		cmd.Stdout, cmd.Stderr = logs, logs
		procs[n.Role] = cmd
		return cmd.Start()
	}
	defer func() {
		for _, c := range procs {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}()
	for i := range p.Nodes {
		if err := start(i); err != nil {
			return err
		}
	}
	m, err := p.WaitOneMaster(ctx, 20*time.Second)
	if err != nil {
		return err
	}
	o := p.Other(m)
	d.say("HA: %s is master (holds %s and the SNAT addresses %v); %s is standby, probing its own uplinks", m, p.LANVIP.Addr(), p.WANVIP, o)
	d.pause(ctx, 2*time.Second)
	f, err := p.HoldFlows(ctx, haFlows)
	if err != nil {
		return err
	}
	defer f.Close()
	d.pause(ctx, 2*time.Second)
	d.say("HA: the LAN host holds %d TCP flows through %s, talking every 50 ms; conntrackd copies them (with their ct marks) to %s", haFlows, m, o)
	t0 := time.Now()
	if err := p.PowerOff(m); err != nil {
		return err
	}
	d.say("HA: %s loses power: every process frozen, every interface down, then killed", m)
	rec, err := p.FirstNewConnection(ctx, t0, 10*time.Second)
	if err != nil {
		return fmt.Errorf("HA: %w", err)
	}
	d.say("HA: new LAN connections work again %s after the power loss: %s took over (VRRP every 100 ms, synced flows committed)", rec.Round(time.Millisecond), o)
	alive, _ := f.WaitSettled(t0.Add(rec), 15*time.Second)
	d.say("HA: %d of %d held TCP flows carried on through %s", alive, haFlows, o)
	d.record("%-12s %-8s → %s took over in %s; %d/%d held flows survived", "power loss", m, o, rec.Round(time.Millisecond), alive, haFlows)
	if err := p.PowerOn(m); err != nil {
		return err
	}
	procs[m].Wait()
	if err := start(slices.Index([]string{lab.RoleGWA, lab.RoleGWB}, m)); err != nil {
		return err
	}
	d.say("HA: %s has power again and starts; preemption is off, so it stays standby", m)
	seen := p.WatchMasters(4 * time.Second)
	if len(seen) == 1 && slices.Equal(seen[0], []string{o}) {
		d.say("HA: %s kept the role for 4 s: no second outage", o)
	} else {
		d.say("HA: the LAN address moved: %v", seen)
	}
	return nil
}
