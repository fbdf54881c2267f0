package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/netns"
)

// The demo's IPv6: each ISP routes its delegated /64 to the gateway (the
// lab does that); multihome advertises both on the LAN, the LAN host
// configures one address in each by SLAAC with the interface identifier
// ::80 (ip token), and the DNS name lanhost.example.com answers those
// addresses of the healthy links.
const (
	demoHost6Token = "::80"
	demoHost6Name  = "lanhost.example.com"
)

// demoIPv6Config adds to the lab config the ipv6 section (the first two
// providers' delegated prefixes, 2001:db8:1:100::/64 and
// 2001:db8:2:100::/64, on lan0, one RA a second) and the DNS name lanhost.
func demoIPv6Config(cfg string, isps []lab.ISP) (string, error) {
	out := strings.Replace(cfg, "      names:\n", "      names:\n        - {name: lanhost, ttl: 30s, host6: \""+demoHost6Token+"\"}  # added by the demo\n", 1)
	if out == cfg {
		return "", errors.New("demo: the lab config has no dns names list to add lanhost to")
	}
	return out + fmt.Sprintf(`
# added by the demo: IPv6 with both providers' prefixes on the LAN
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "%s"}
    - {link: isp2, prefix: "%s"}
  ra: {interval: 1s}
`, isps[0].Delegated6, isps[1].Delegated6), nil
}

// setupHost6 makes the LAN host accept RAs and configure SLAAC addresses
// with the interface identifier ::80, without temporary addresses.
func (d *demo) setupHost6(ctx context.Context) error {
	err := netns.Do(d.l.NS(d.host()), func() error {
		for _, kv := range [][2]string{{"accept_ra", "2"}, {"autoconf", "1"}, {"accept_ra_pinfo", "1"}, {"use_tempaddr", "0"}} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/eth0/"+kv[0], []byte(kv[1]), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("LAN host sysctls: %w", err)
	}
	if out, err := d.l.Run(ctx, d.host(), "ip", "token", "set", demoHost6Token, "dev", "eth0").CombinedOutput(); err != nil {
		return fmt.Errorf("ip token on the LAN host: %w: %s", err, out)
	}
	return nil
}

func (d *demo) host() string { return d.l.Hosts[0].Name }

// hostAddr6 is one global IPv6 address of the LAN host.
type hostAddr6 struct {
	addr       netip.Addr
	deprecated bool
	preferred  string // preferred lifetime as ip shows it: "14399sec", "0sec", "forever"
}

// hostAddrs6 reads the LAN host's global IPv6 addresses from its kernel.
func (d *demo) hostAddrs6(ctx context.Context) ([]hostAddr6, error) {
	out, err := d.l.Run(ctx, d.host(), "ip", "-6", "-j", "addr", "show", "dev", "eth0", "scope", "global").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -6 addr on the LAN host: %w", err)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local      string `json:"local"`
			Deprecated bool   `json:"deprecated"`
			Preferred  any    `json:"preferred_life_time"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &ifs); err != nil {
		return nil, fmt.Errorf("ip -j addr output %q: %w", out, err)
	}
	var as []hostAddr6
	for _, i := range ifs {
		for _, a := range i.AddrInfo {
			ip, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			pref := fmt.Sprint(a.Preferred)
			if f, ok := a.Preferred.(float64); ok {
				pref = fmt.Sprintf("%.0fs", f)
			}
			as = append(as, hostAddr6{addr: ip, deprecated: a.Deprecated, preferred: pref})
		}
	}
	return as, nil
}

// waitAddr6 polls the LAN host until its address in p satisfies ok, for at
// most timeout.
func (d *demo) waitAddr6(ctx context.Context, p netip.Prefix, timeout time.Duration, what string, ok func(hostAddr6) bool) (hostAddr6, error) {
	deadline := time.Now().Add(timeout)
	var as []hostAddr6
	var err error
	for {
		if as, err = d.hostAddrs6(ctx); err == nil {
			for _, a := range as {
				if p.Contains(a.addr) && ok(a) {
					return a, nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return hostAddr6{}, fmt.Errorf("no %s on the LAN host within %s (addresses %v, %v)", what, timeout, as, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get6 fetches /ip from the core's HTTP server over IPv6 from the LAN
// host, from src (the kernel's choice when invalid): the server answers
// the source address it saw.
func (d *demo) get6(ctx context.Context, src netip.Addr, timeout time.Duration) (string, error) {
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	return d.l.GetFrom(d.host(), src, "http://"+net.JoinHostPort(d.l.Servers.HTTP6.String(), "80")+"/ip", timeout)
}

// get6Retry is get6 until it succeeds or timeout passes (the datapath may
// still be settling).
func (d *demo) get6Retry(ctx context.Context, src netip.Addr, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := d.get6(ctx, src, time.Second)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return got, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ipv6Start waits for the LAN host's SLAAC addresses, one per provider,
// both preferred, and shows that each leaves by its provider.
func (d *demo) ipv6Start(ctx context.Context) error {
	var parts []string
	for i := range d.addr6 {
		p := d.l.ISPs[i].Delegated6
		a, err := d.waitAddr6(ctx, p, 15*time.Second, "preferred address in "+p.String(), func(a hostAddr6) bool { return !a.deprecated })
		if err != nil {
			return err
		}
		d.addr6[i] = a.addr
		parts = append(parts, fmt.Sprintf("%s (%s, preferred for %s)", a.addr, d.l.ISPs[i].Name, a.preferred))
	}
	d.say("IPv6: LAN host %s configured from multihome's RAs: %s", d.host(), strings.Join(parts, " and "))
	for i, a := range d.addr6 {
		got, err := d.get6Retry(ctx, a, 5*time.Second)
		if err != nil || got != a.String() {
			return fmt.Errorf("IPv6 from the LAN host's %s: the server saw %q, %v", a, got, err)
		}
		d.say("IPv6: a connection from %s reaches the server through %s, which sees %s", a, d.l.ISPs[i].Name, got)
	}
	got, err := d.get6Retry(ctx, netip.Addr{}, 5*time.Second)
	if err != nil {
		return fmt.Errorf("IPv6 from the LAN host: %w", err)
	}
	d.say("IPv6: with both addresses preferred, a new connection with the host's own choice of source (RFC 6724, a tie here) leaves from %s", got)
	return nil
}

// v6Result is what happened to the LAN host's address of a failed ISP.
type v6Result struct {
	took time.Duration // fault → address deprecated
	addr hostAddr6
	err  error
}

// watchDeprecated reports when the host's address in isp k's prefix is
// deprecated, measured from at.
func (d *demo) watchDeprecated(ctx context.Context, k int, at time.Time) <-chan v6Result {
	c := make(chan v6Result, 1)
	go func() {
		a, err := d.waitAddr6(ctx, d.l.ISPs[k].Delegated6, 10*time.Second, "deprecated address in "+d.l.ISPs[k].Delegated6.String(), func(a hostAddr6) bool { return a.deprecated })
		c <- v6Result{time.Since(at), a, err}
	}()
	return c
}

// ipv6Down shows (and checks) that the failed ISP k's address is
// deprecated on the host and that new connections leave from the other
// provider's address.
func (d *demo) ipv6Down(ctx context.Context, k int, fault string, c <-chan v6Result) error {
	r := <-c
	if r.err != nil {
		return fmt.Errorf("IPv6: %w", r.err)
	}
	isp := d.l.ISPs[k].Name
	other := 1 - k
	d.say("IPv6: %s's address %s deprecated on the host %s after the fault (preferred_lft %s)", isp, r.addr.addr, r.took.Round(time.Millisecond), r.addr.preferred)
	d.record("%-12s %-8s IPv6 address deprecated on the host in %s", fault, isp, r.took.Round(time.Millisecond))
	got, err := d.get6Retry(ctx, netip.Addr{}, 3*time.Second)
	if err != nil || got != d.addr6[other].String() {
		return fmt.Errorf("IPv6: a new connection after %s's failure came from %q (%v), want %s's %s", isp, got, err, d.l.ISPs[other].Name, d.addr6[other])
	}
	d.say("IPv6: new connections now leave from %s's address: the server sees %s", d.l.ISPs[other].Name, got)
	return nil
}

// ipv6Up waits for ISP k's address to be preferred again after a repair.
func (d *demo) ipv6Up(ctx context.Context, k int, since time.Time) error {
	a, err := d.waitAddr6(ctx, d.l.ISPs[k].Delegated6, 10*time.Second, "preferred address in "+d.l.ISPs[k].Delegated6.String(), func(a hostAddr6) bool { return !a.deprecated })
	if err != nil {
		return fmt.Errorf("IPv6: %w", err)
	}
	took := time.Since(since).Round(time.Millisecond)
	d.say("IPv6: %s's address %s preferred again %s after the repair (preferred_lft %s)", d.l.ISPs[k].Name, a.addr, took, a.preferred)
	d.record("%-12s %-8s IPv6 address preferred again in %s (incl. hold-down)", "repair", d.l.ISPs[k].Name, took)
	return nil
}

// aaaaAnswer asks the gateway's DNS server for lanhost's AAAA records from
// the Internet core, through each ISP in turn until one answers.
func (d *demo) aaaaAnswer() string {
	for _, isp := range d.l.ISPs {
		addrs, ttl, err := d.l.Query("core", isp.GW.String(), demoHost6Name, mdns.TypeAAAA, 300*time.Millisecond)
		if err != nil {
			continue
		}
		return fmt.Sprintf("%s AAAA → %s (TTL %ds), asked via %s", demoHost6Name, strings.Join(addrs, " "), ttl, isp.Name)
	}
	return demoHost6Name + " AAAA: no answer via any ISP"
}
