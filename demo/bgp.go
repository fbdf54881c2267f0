package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/multihome/multihome/lab"
)

// The demo's BGP: FRR's bgpd is each ISP's router (AS 64501, 64502),
// peering with multihome's speaker on the gateway (AS 64500), which
// announces the site prefix 192.0.2.128/25 (next to the lab's LAN
// 192.0.2.0/25): to isp1 as primary, to isp2 as backup with three
// prepends. Flap damping keeps its defaults: the demo's two isp1 faults
// cost 1000 each, decaying with a 5 min half-life, under the 2500 that
// would suppress the route.
const (
	demoSitePrefix = "192.0.2.128/25"
	demoSiteASN    = 64500
	demoBackupPath = "64500 64500 64500 64500"
)

// demoBGPConfig is the bgp section the demo appends.
func demoBGPConfig(isps []lab.ISP) string {
	return fmt.Sprintf(`
# added by the demo: announce the site's prefix to both ISPs' routers (FRR)
bgp:
  asn: %d
  prefixes: [%s]
  connect_retry: 1s
  neighbors:
    - {link: isp1, address: %s, asn: %d}
    - {link: isp2, address: %s, asn: %d, role: backup}   # 3 prepends
`, demoSiteASN, demoSitePrefix, isps[0].Router, demoISPASN(1), isps[1].Router, demoISPASN(2))
}

func demoISPASN(k int) int { return demoSiteASN + k }

// demoFRRConfig is bgpd's configuration for ISP isp: one eBGP session to
// the gateway, short timers so a restored cable reconnects quickly.
func demoFRRConfig(isp lab.ISP) string {
	return fmt.Sprintf(`router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor %s remote-as %d
 neighbor %s timers 3 9
 neighbor %s timers connect 1
`, demoISPASN(isp.Index), isp.Router, isp.GW, demoSiteASN, isp.GW, isp.GW)
}

// startFRR runs FRR as both ISPs' routers. It returns false (and says why)
// when FRR is not installed: the demo then goes on without BGP.
func (d *demo) startFRR(ctx context.Context) (bool, error) {
	if err := lab.FRRAvailable(); err != nil {
		d.say("BGP: skipped: %v", err)
		return false, nil
	}
	for _, isp := range d.l.ISPs[:2] {
		f, err := d.l.StartFRR(ctx, isp.Name, demoFRRConfig(isp))
		if err != nil {
			return false, err
		}
		d.frr = append(d.frr, f)
	}
	d.say("BGP: FRR bgpd runs as isp1's router (AS %d) and isp2's (AS %d), peering with the gateway (AS %d)", demoISPASN(1), demoISPASN(2), demoSiteASN)
	return true, nil
}

// routeAt returns the AS path of isp k's router's route to the site
// prefix ("" if it has none).
func (d *demo) routeAt(k int) (string, bool, error) {
	return d.frr[k].Route(demoSitePrefix)
}

// waitRoute polls isp k's router until has(its route) holds.
func (d *demo) waitRoute(ctx context.Context, k int, timeout time.Duration, what string, ok func(path string, has bool) bool) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		path, has, err := d.routeAt(k)
		if err == nil && ok(path, has) {
			return path, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("BGP: %s's router: no %s within %s (route %q %v, %v)", d.l.ISPs[k].Name, what, timeout, path, has, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bgpStart waits for the site prefix at both ISPs' routers with the
// primary and backup paths.
func (d *demo) bgpStart(ctx context.Context) error {
	want := []string{fmt.Sprint(demoSiteASN), demoBackupPath}
	for k := range 2 {
		if _, err := d.waitRoute(ctx, k, 30*time.Second, demoSitePrefix+" with AS path "+want[k], func(p string, has bool) bool { return has && p == want[k] }); err != nil {
			return err
		}
	}
	d.say("BGP: isp1's router has %s with AS path %s; isp2's with %s (backup)", demoSitePrefix, want[0], want[1])
	return nil
}

type bgpResult struct {
	took time.Duration
	err  error
}

// watchWithdrawn reports when isp k's router loses the site prefix,
// measured from at.
func (d *demo) watchWithdrawn(ctx context.Context, k int, at time.Time) <-chan bgpResult {
	c := make(chan bgpResult, 1)
	go func() {
		_, err := d.waitRoute(ctx, k, 10*time.Second, "withdrawal of "+demoSitePrefix, func(_ string, has bool) bool { return !has })
		c <- bgpResult{time.Since(at), err}
	}()
	return c
}

// bgpDown shows (and checks) that the failed ISP k's router lost the
// site prefix and the other one kept it.
func (d *demo) bgpDown(ctx context.Context, k int, fault string, c <-chan bgpResult) error {
	r := <-c
	if r.err != nil {
		return r.err
	}
	isp, other := d.l.ISPs[k].Name, 1-k
	path, has, err := d.routeAt(other)
	if err != nil || !has {
		return fmt.Errorf("BGP: %s's router lost %s too when %s failed (%v)", d.l.ISPs[other].Name, demoSitePrefix, isp, err)
	}
	d.say("BGP: %s withdrawn from %s's router %s after the fault (%s keeps it, AS path %s)", demoSitePrefix, isp, r.took.Round(time.Millisecond), d.l.ISPs[other].Name, path)
	d.record("%-12s %-8s BGP route withdrawn at its router in %s", fault, isp, r.took.Round(time.Millisecond))
	return nil
}

// bgpUp waits for the site prefix to be announced again to isp k;
// newSession says the BGP session itself went down with the fault (a
// pulled cable) and has to come back first.
func (d *demo) bgpUp(ctx context.Context, k int, since time.Time, newSession bool) error {
	want := fmt.Sprint(demoSiteASN)
	if _, err := d.waitRoute(ctx, k, 30*time.Second, demoSitePrefix+" again", func(p string, has bool) bool { return has && p == want }); err != nil {
		return err
	}
	took := time.Since(since).Round(time.Millisecond)
	how, incl := "after the hold-down", "incl. hold-down"
	if newSession {
		how, incl = "the session came back with the cable, then the hold-down passed", "incl. new session and hold-down"
	}
	d.say("BGP: %s announced again to %s's router %s after the repair (%s)", demoSitePrefix, d.l.ISPs[k].Name, took, how)
	d.record("%-12s %-8s BGP route announced again in %s (%s)", "repair", d.l.ISPs[k].Name, took, incl)
	return nil
}
