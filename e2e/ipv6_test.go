package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"
)

// ipv6Section is appended to the lab config: both ISPs' delegated
// prefixes advertised on the LAN, one RA a second, and the operator's
// firewall sets (operatorFirewall) kept filled with them.
func ipv6Section(p1 string) string {
	return fmt.Sprintf(`
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "%s"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s, retire: 8s}
  rdnss: ["2001:db8:ffff::53"]
  firewall_sets:
    - {table: filter, set: lan6}
    - {family: ip6, table: edge, set: isp1_lan, links: [isp1]}
`, p1)
}

// operatorFirewall is the operator's own nftables ruleset on the gateway:
// LAN sources outside the site's prefixes (set lan6, filled by multihome)
// and the lab's static 2001:db8:100::/64 are not forwarded.
const operatorFirewall = `table inet filter {
	set lan6 {
		type ipv6_addr
		flags interval
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "lan0" meta nfproto ipv6 ip6 saddr != @lan6 ip6 saddr != 2001:db8:100::/64 counter drop
	}
}
table ip6 edge {
	set isp1_lan {
		type ipv6_addr
		flags interval
		elements = { 2001:db8:9::/48 }
	}
}
`

// firewallSet returns the prefixes in the gateway's set family table name.
func firewallSet(t *testing.T, l *lab.Lab, family, table, name string) []string {
	t.Helper()
	out, err := l.Run(context.Background(), "gw", "nft", "-j", "list", "set", family, table, name).Output()
	if err != nil {
		t.Fatalf("nft list set %s %s %s: %v", family, table, name, err)
	}
	var v struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Prefix struct {
						Addr string `json:"addr"`
						Len  int    `json:"len"`
					} `json:"prefix"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("nft list set %s %s %s: %v: %s", family, table, name, err, out)
	}
	var ps []string
	for _, o := range v.Nftables {
		if o.Set != nil {
			for _, e := range o.Set.Elem {
				ps = append(ps, fmt.Sprintf("%s/%d", e.Prefix.Addr, e.Prefix.Len))
			}
		}
	}
	sort.Strings(ps)
	return ps
}

// waitFirewallSet waits until the set holds exactly want (sorted).
func waitFirewallSet(t *testing.T, l *lab.Lab, timeout time.Duration, family, table, name string, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if got = firewallSet(t, l, family, table, name); slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("firewall set %s %s %s = %v after %s, want %v", family, table, name, got, timeout, want)
		}
	}
}

// withLANHost adds to the lab config's zone the steered name lanhost: a
// LAN server with interface identifier ::80 in each provider's LAN
// prefix (dns host6 records), whose AAAA records follow the prefixes.
func withLANHost(t *testing.T, cfg string) string {
	t.Helper()
	out := strings.Replace(cfg, "      names:\n", `      names:
        - name: lanhost
          ttl: 30s
          records:
            - {link: isp1, host6: "::80"}
            - {link: isp2, host6: "::80"}
`, 1)
	if out == cfg {
		t.Fatal("the lab config has no dns names list to add lanhost to")
	}
	return out
}

// queryAAAA asks the site's DNS server at server (one of its uplink
// addresses, reached through that ISP) for name's AAAA records, from the
// Internet core; the addresses come sorted.
func queryAAAA(t *testing.T, l *lab.Lab, server, name string) ([]string, uint32, error) {
	t.Helper()
	return l.Query("core", server, name, mdns.TypeAAAA, 500*time.Millisecond)
}

// waitAAAA polls lanhost's AAAA answer via server until it is want
// (sorted) and returns how long that took.
func waitAAAA(t *testing.T, l *lab.Lab, server string, timeout time.Duration, what string, want ...string) time.Duration {
	t.Helper()
	sort.Strings(want)
	start := time.Now()
	for {
		got, _, err := queryAAAA(t, l, server, "lanhost.example.com")
		if err == nil && slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: lanhost AAAA via %s = %v (%v) after %s, want %v", what, server, got, err, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serveLANHost makes lan1 the LAN server lanhost stands for: SLAAC
// addresses with the interface identifier ::80 (ip token), and a TCP
// listener on port 8080 that greets with "lanhost".
func serveLANHost(t *testing.T, l *lab.Lab) {
	t.Helper()
	if out, err := l.Run(context.Background(), "lan1", "ip", "token", "set", "::80", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("ip token in lan1: %v %s", err, out)
	}
	var ln net.Listener
	if err := netns.Do(l.NS("lan1"), func() error {
		var err error
		ln, err = net.Listen("tcp6", "[::]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("lanhost\n"))
			c.Close()
		}
	}()
}

// reachLANHost connects from the Internet core to each address DNS gave
// for lanhost and reads the server's greeting: the answers lead to it.
func reachLANHost(t *testing.T, l *lab.Lab, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		var err error
		for range 20 { // routes and source rules may still be settling
			if err = greet(l, a); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("lanhost at %s from the Internet: %v", a, err)
		}
	}
}

func greet(l *lab.Lab, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := netns.DialContext(ctx, l.NS("core"), &net.Dialer{}, "tcp", net.JoinHostPort(addr, "8080"))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "lanhost\n" {
		return fmt.Errorf("greeting %q", b)
	}
	return nil
}

// hostAddr is one global IPv6 address of a LAN host, as `ip -j addr` shows it.
type hostAddr struct {
	Addr       netip.Addr
	Deprecated bool
	Preferred  string
	Valid      string
}

// hostAddrs returns the host's global IPv6 addresses on eth0.
func hostAddrs(t *testing.T, l *lab.Lab, role string) []hostAddr {
	t.Helper()
	out, err := l.Run(context.Background(), role, "ip", "-6", "-j", "addr", "show", "dev", "eth0", "scope", "global").Output()
	if err != nil {
		t.Fatalf("ip -6 addr in %s: %v", role, err)
	}
	var ifs []struct {
		AddrInfo []struct {
			Local      string `json:"local"`
			Deprecated bool   `json:"deprecated"`
			Preferred  any    `json:"preferred_life_time"`
			Valid      any    `json:"valid_life_time"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &ifs); err != nil {
		t.Fatalf("ip -j output %q: %v", out, err)
	}
	var as []hostAddr
	for _, i := range ifs {
		for _, a := range i.AddrInfo {
			ip, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			as = append(as, hostAddr{Addr: ip, Deprecated: a.Deprecated, Preferred: fmt.Sprint(a.Preferred), Valid: fmt.Sprint(a.Valid)})
		}
	}
	return as
}

// addrIn returns the host's address in p.
func addrIn(as []hostAddr, p netip.Prefix) (hostAddr, bool) {
	for _, a := range as {
		if p.Contains(a.Addr) {
			return a, true
		}
	}
	return hostAddr{}, false
}

// waitAddr polls the host until its address in p satisfies ok.
func waitAddr(t *testing.T, l *lab.Lab, p netip.Prefix, timeout time.Duration, what string, ok func(hostAddr) bool) hostAddr {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		as := hostAddrs(t, l, "lan1")
		if a, found := addrIn(as, p); found && ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s; host addresses: %+v", what, timeout, as)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get6 fetches /ip from the core's HTTP server over IPv6 from lan1, from
// src (or the kernel's choice when src is invalid).
func get6(l *lab.Lab, src netip.Addr, timeout time.Duration) (string, error) {
	return l.GetFrom("lan1", src, "http://[2001:db8:ffff::80]/ip", timeout)
}

// routeDev asks the gateway's kernel which interface a LAN packet from src
// to the HTTP server leaves by.
func routeDev(t *testing.T, l *lab.Lab, src netip.Addr) string {
	t.Helper()
	out, err := l.Run(context.Background(), "gw", "ip", "-6", "route", "get", "2001:db8:ffff::80", "from", src.String(), "iif", "lan0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route get from %s: %v %s", src, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "dev" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return string(out)
}

// gwTxBytes reads a gateway interface's transmitted byte counter.
func gwTxBytes(t *testing.T, l *lab.Lab, dev string) int64 {
	t.Helper()
	out, err := l.Run(context.Background(), "gw", "cat", "/sys/class/net/"+dev+"/statistics/tx_bytes").Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// echoFrom opens a connection from src in lan1 to the core's echo server.
func echoFrom(t *testing.T, l *lab.Lab, src netip.Addr) net.Conn {
	t.Helper()
	c, err := netns.DialContext(context.Background(), l.NS("lan1"), &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second}, "tcp", "[2001:db8:ffff::7]:7")
	if err != nil {
		t.Fatalf("echo from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoRoundTrip sends n bytes over c and reads them back.
func echoRoundTrip(c net.Conn, n int) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	msg := []byte(strings.Repeat("x", n))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return <-errc
}

// leavesBy sends 256 KiB over c and checks from the gateway's counters
// that it left by dev (the lab's ISPs do not filter sources, so a packet
// from the wrong prefix would still get through: only the path tells).
func leavesBy(t *testing.T, l *lab.Lab, c net.Conn, dev, other string) {
	t.Helper()
	const n = 256 << 10
	b0, o0 := gwTxBytes(t, l, dev), gwTxBytes(t, l, other)
	if err := echoRoundTrip(c, n); err != nil {
		t.Errorf("echo from %s: %v", c.LocalAddr(), err)
		return
	}
	db, do := gwTxBytes(t, l, dev)-b0, gwTxBytes(t, l, other)-o0
	if db < n || do > n/4 {
		t.Errorf("flow from %s: %s +%d bytes, %s +%d bytes; want it on %s", c.LocalAddr(), dev, db, other, do, dev)
	}
}

func setHostSysctls(t *testing.T, l *lab.Lab, role string) {
	t.Helper()
	err := netns.Do(l.NS(role), func() error {
		for k, v := range map[string]string{"accept_ra": "2", "autoconf": "1", "accept_ra_pinfo": "1", "use_tempaddr": "0"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/eth0/"+k, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIPv6MultihomingLAN: a LAN host configured by SLAAC from multihome's
// RAs gets one address per provider; each source leaves by its provider;
// a blackholed isp1 gets its prefix deprecated and new connections use
// isp2's prefix; recovery makes it preferred again; a reload renumbering
// isp1 updates the RAs, the gateway's address and the source rules. All
// along, the DNS name of a LAN server (host6 ::80, the host's ip token)
// answers its address in the prefixes of the healthy links, and the
// renumbered one after the reload; each address answered reaches the
// host from the Internet core.
func TestIPv6MultihomingLAN(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	setHostSysctls(t, l, "lan1")
	serveLANHost(t, l)
	p1 := netip.MustParsePrefix("2001:db8:1:100::/64")
	p2 := netip.MustParsePrefix("2001:db8:2:100::/64")
	cfg := withLANHost(t, string(examples.Lab())) + ipv6Section(p1.String())
	// The operator's firewall exists before multihome starts; its sets
	// are empty (or hold a stale element) until multihome fills them.
	fw := l.Run(context.Background(), "gw", "nft", "-f", "-")
	fw.Stdin = strings.NewReader(operatorFirewall)
	if out, err := fw.CombinedOutput(); err != nil {
		t.Fatalf("operator's firewall: %v %s", err, out)
	}
	start := time.Now()
	d, path := startDaemon(t, l, []byte(cfg))
	waitFirewallSet(t, l, 10*time.Second, "inet", "filter", "lan6", p1.String(), p2.String())
	waitFirewallSet(t, l, time.Second, "ip6", "edge", "isp1_lan", p1.String())
	t.Logf("firewall sets filled %s after start", time.Since(start).Round(time.Millisecond))
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)
	via1, via2 := l.ISPs[0].GW.String(), l.ISPs[1].GW.String()
	host1, host2 := "2001:db8:1:100::80", "2001:db8:2:100::80"
	waitAAAA(t, l, via1, 5*time.Second, "both links up", host1, host2)
	waitAAAA(t, l, via2, 5*time.Second, "both links up", host1, host2)
	waitAddr(t, l, p2, 10*time.Second, "lanhost address "+host2, func(a hostAddr) bool { return a.Addr.String() == host2 })
	reachLANHost(t, l, host1, host2)

	// SLAAC: one address per provider prefix, both preferred.
	a1 := waitAddr(t, l, p1, 10*time.Second, "SLAAC address in "+p1.String(), func(a hostAddr) bool { return !a.Deprecated })
	a2 := waitAddr(t, l, p2, 10*time.Second, "SLAAC address in "+p2.String(), func(a hostAddr) bool { return !a.Deprecated })
	t.Logf("host addresses %s (preferred %s) and %s, %s after start", a1.Addr, a1.Preferred, a2.Addr, time.Since(start).Round(time.Millisecond))

	// The API and the CLI show both prefixes preferred, and the sets.
	v6 := ipv6View(t, d, 5*time.Second, "both preferred", func(m map[string]api.IPv6Prefix) bool {
		return len(m) == 2 && prefixIs(m, p1, "isp1", "static", "preferred") && prefixIs(m, p2, "isp2", "static", "preferred") &&
			m[p1.String()].PreferredLifetime > 0 && m[p1.String()].ValidLifetime >= m[p1.String()].PreferredLifetime
	})
	if len(v6.FirewallSets) != 2 || v6.FirewallSets[0].Set != "lan6" || len(v6.FirewallSets[0].Prefixes) != 2 || v6.FirewallSets[0].Error != "" || v6.FirewallSets[0].Checked.IsZero() {
		t.Errorf("firewall sets in GET /api/v1/ipv6: %+v", v6.FirewallSets)
	}
	if out, err := d.cli("status"); err != nil || !regexp.MustCompile(`(?m)^IPv6 prefixes \(sadr on lan0\)\n.*\n(isp1\s+2001:db8:1:100::/64\s+static\s+preferred\s.*\n)`).MatchString(out) {
		t.Errorf("multihome status: %v\n%s", err, out)
	}

	// Each source leaves by its provider and the server sees it.
	for _, c := range []struct {
		src netip.Addr
		dev string
	}{{a1.Addr, "wan1"}, {a2.Addr, "wan2"}} {
		if dev := routeDev(t, l, c.src); dev != c.dev {
			t.Errorf("gateway routes LAN packets from %s out of %s, want %s", c.src, dev, c.dev)
		}
		var got string
		var err error
		for range 20 { // the datapath may still be settling
			if got, err = get6(l, c.src, time.Second); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || got != c.src.String() {
			t.Fatalf("GET /ip from %s: %q, %v", c.src, got, err)
		}
		other := map[string]string{"wan1": "wan2", "wan2": "wan1"}[c.dev]
		leavesBy(t, l, echoFrom(t, l, c.src), c.dev, other)
	}

	// A long-lived flow from isp2's prefix, which must survive isp1's failure.
	echo, err := netns.DialContext(context.Background(), l.NS("lan1"), &net.Dialer{LocalAddr: &net.TCPAddr{IP: a2.Addr.AsSlice()}, Timeout: 2 * time.Second}, "tcp", "[2001:db8:ffff::7]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	roundTrip := func(msg string) error {
		echo.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := echo.Write([]byte(msg)); err != nil {
			return err
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(echo, b); err != nil {
			return err
		}
		if string(b) != msg {
			return fmt.Errorf("echo %q, want %q", b, msg)
		}
		return nil
	}
	if err := roundTrip("before"); err != nil {
		t.Fatal(err)
	}

	// isp1 blackholed: its prefix deprecated on the host.
	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	down := d.waitState(5*time.Second, "isp1", monitor.Down)
	dep := waitAddr(t, l, p1, 5*time.Second, "deprecated "+p1.String()+" address", func(a hostAddr) bool { return a.Deprecated })
	took := time.Since(at)
	t.Logf("isp1 down %s after the blackhole; host address %s deprecated (preferred_lft %s, valid_lft %s) within %s",
		down.Time.Sub(at).Round(time.Millisecond), dep.Addr, dep.Preferred, dep.Valid, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("deprecation took %s, want < 3s", took)
	}
	ipv6View(t, d, 5*time.Second, "isp1's prefix deprecated", func(m map[string]api.IPv6Prefix) bool {
		e := m[p1.String()]
		return prefixIs(m, p1, "isp1", "static", "deprecated") && e.Reason == "link down" && e.PreferredLifetime == 0 && e.ValidLifetime > 0 &&
			prefixIs(m, p2, "isp2", "static", "preferred")
	})
	t.Logf("GET /api/v1/ipv6 shows %s deprecated (link down) %s after the blackhole", p1, time.Since(at).Round(time.Millisecond))
	waitAAAA(t, l, via2, 3*time.Second, "isp1 blackholed", host2)
	t.Logf("lanhost AAAA via isp2 is isp2's %s only, %s after the blackhole", host2, time.Since(at).Round(time.Millisecond))
	reachLANHost(t, l, host2)
	if err := greet(l, host1); err == nil {
		t.Errorf("lanhost at isp1's %s answered while isp1 is blackholed: DNS withdrew a working address?", host1)
	}
	if a, _ := addrIn(hostAddrs(t, l, "lan1"), p2); a.Deprecated {
		t.Errorf("isp2's address deprecated too: %+v", a)
	}
	got, err := get6(l, netip.Addr{}, 2*time.Second)
	if err != nil || got != a2.Addr.String() {
		t.Errorf("new connection without a source after isp1's failure: %q, %v; want from %s", got, err, a2.Addr)
	}
	// isp1's source cannot leak out through isp2 (it would be spoofed there).
	if got, err := get6(l, a1.Addr, 500*time.Millisecond); err == nil {
		t.Errorf("GET from isp1's %s succeeded while isp1 is blackholed: %q (left by another ISP?)", a1.Addr, got)
	}
	if err := roundTrip("during"); err != nil {
		t.Errorf("isp2 flow broken by isp1's failure: %v", err)
	}

	// Recovery: preferred again.
	restored := time.Now()
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	d.waitState(10*time.Second, "isp1", monitor.Up)
	back := waitAddr(t, l, p1, 5*time.Second, "preferred "+p1.String()+" address", func(a hostAddr) bool { return !a.Deprecated })
	t.Logf("isp1 prefix preferred again %s after repair (hold-down included): preferred_lft %s", time.Since(restored).Round(time.Millisecond), back.Preferred)
	if got, err := get6(l, a1.Addr, 2*time.Second); err != nil || got != a1.Addr.String() {
		t.Errorf("GET /ip from %s after recovery: %q, %v", a1.Addr, got, err)
	}
	waitAAAA(t, l, via2, 5*time.Second, "isp1 recovered", host1, host2)

	// Renumbering: isp1 now delegates 2001:db8:1:200::/64 (routed to the
	// gateway by the ISP), set by a reload.
	n1 := netip.MustParsePrefix("2001:db8:1:200::/64")
	if out, err := l.Run(context.Background(), "isp1", "ip", "-6", "route", "add", n1.String(), "via", l.ISPs[0].GW6.String()).CombinedOutput(); err != nil {
		t.Fatalf("route the new prefix in isp1: %v %s", err, out)
	}
	if err := os.WriteFile(path, []byte(withLANHost(t, string(examples.Lab()))+ipv6Section(n1.String())+fmt.Sprintf("\napi: {listen: %q}\n", d.api)), 0o644); err != nil {
		t.Fatal(err)
	}
	renumbered := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The LAN server's AAAA follows: isp1's address in the new prefix, not
	// the old one any more.
	// The operator's sets follow: the new prefix at once, the old one
	// kept for ra.retire (8 s) since hosts still use its deprecated
	// addresses for existing connections.
	waitFirewallSet(t, l, 5*time.Second, "inet", "filter", "lan6", p1.String(), n1.String(), p2.String())
	waitFirewallSet(t, l, time.Second, "ip6", "edge", "isp1_lan", p1.String(), n1.String())
	t.Logf("firewall sets hold the new prefix %s after SIGHUP", time.Since(renumbered).Round(time.Millisecond))
	// The API: the old prefix retired (zero lifetimes) until ra.retire
	// (8 s) ends, the new one preferred.
	ipv6View(t, d, 3*time.Second, "after the renumbering", func(m map[string]api.IPv6Prefix) bool {
		return prefixIs(m, p1, "isp1", "static", "retired") && m[p1.String()].ValidLifetime == 0 &&
			prefixIs(m, n1, "isp1", "static", "preferred") && prefixIs(m, p2, "isp2", "static", "preferred")
	})
	waitAAAA(t, l, via2, 5*time.Second, "after renumbering isp1", "2001:db8:1:200::80", host2)
	dnsTook := time.Since(renumbered)
	_, ttl, _ := queryAAAA(t, l, via2, "lanhost.example.com")
	t.Logf("lanhost AAAA renumbered to 2001:db8:1:200::80 %s after SIGHUP (TTL now %d s)", dnsTook.Round(time.Millisecond), ttl)
	if ttl > 6 {
		t.Errorf("TTL %d right after the renumbering, want about the name's min_ttl 5 s (configured ttl 30 s)", ttl)
	}
	waitAAAA(t, l, via1, 5*time.Second, "after renumbering isp1, asked via isp1", "2001:db8:1:200::80", host2)
	n := waitAddr(t, l, n1, 5*time.Second, "SLAAC address in "+n1.String(), func(a hostAddr) bool { return !a.Deprecated })
	old := waitAddr(t, l, p1, 5*time.Second, "old prefix "+p1.String()+" deprecated", func(a hostAddr) bool { return a.Deprecated })
	t.Logf("renumbered in %s: new %s, old %s deprecated (valid_lft %s)", time.Since(renumbered).Round(time.Millisecond), n.Addr, old.Addr, old.Valid)
	rules, err := l.Run(context.Background(), "gw", "ip", "-6", "rule", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), "from "+n1.String()) || strings.Contains(string(rules), "from "+p1.String()) {
		t.Errorf("gateway rules after renumbering:\n%s", rules)
	}
	if dev := routeDev(t, l, n.Addr); dev != "wan1" {
		t.Errorf("packets from the renumbered %s leave by %s, want wan1", n.Addr, dev)
	}
	if got, err := get6(l, n.Addr, 2*time.Second); err != nil || got != n.Addr.String() {
		t.Errorf("GET /ip from renumbered %s: %q, %v", n.Addr, got, err)
	}
	// The renumbered AAAA leads to the LAN server (its token address in
	// the new prefix), through isp1.
	if n.Addr.String() != "2001:db8:1:200::80" {
		t.Errorf("host's address in %s is %s, want the ::80 token's", n1, n.Addr)
	}
	reachLANHost(t, l, "2001:db8:1:200::80")
	lan, err := l.Run(context.Background(), "gw", "ip", "-6", "-o", "addr", "show", "dev", "lan0").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lan), "2001:db8:1:200::1/64") || strings.Contains(string(lan), "2001:db8:1:100::1/64") {
		t.Errorf("gateway LAN addresses after renumbering:\n%s", lan)
	}
	// The retired prefix leaves the sets when ra.retire (8 s) ends, at
	// the next RA tick (1 s); not before.
	if got := firewallSet(t, l, "inet", "filter", "lan6"); time.Since(renumbered) < 7*time.Second && !slices.Contains(got, p1.String()) {
		t.Errorf("retired %s left the firewall set %s after SIGHUP, before ra.retire (8 s) ended: %v", p1, time.Since(renumbered), got)
	}
	waitFirewallSet(t, l, time.Until(renumbered.Add(8*time.Second))+5*time.Second, "inet", "filter", "lan6", n1.String(), p2.String())
	t.Logf("retired %s left the firewall sets %s after SIGHUP (ra.retire 8s)", p1, time.Since(renumbered).Round(time.Millisecond))
	waitFirewallSet(t, l, time.Second, "ip6", "edge", "isp1_lan", n1.String())
	// Every LAN packet of the test came from a prefix in the set (or the
	// lab's static one): the operator's drop rule never matched.
	out, err := l.Run(context.Background(), "gw", "nft", "list", "chain", "inet", "filter", "forward").Output()
	if chain := strings.Join(strings.Fields(string(out)), " "); err != nil || !strings.Contains(chain, "counter packets 0 ") {
		t.Errorf("operator's forward chain (its drop rule should not have matched): %v %s", err, chain)
	}
}

// nptv6Section is appended to the lab config: nptv6 mode with the lab's
// LAN 2001:db8:100::/64 as the internal prefix, mapped to each ISP's.
const nptv6Section = `
ipv6:
  lan: lan0
  mode: nptv6
  internal: "2001:db8:100::/64"
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
    - {link: isp2, prefix: "2001:db8:2:100::/64"}
  ra: {interval: 1s}
`

// TestIPv6NPTv6: in nptv6 mode the LAN has one internal prefix (the lab's
// 2001:db8:100::/64, not routed in the core); the gateway maps it to the
// prefix of the link in use, so the server sees the host's interface
// identifier under isp1's prefix, then under isp2's after isp1 fails.
func TestIPv6NPTv6(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	setHostSysctls(t, l, "lan1")
	cfg := string(examples.Lab()) + nptv6Section
	d, _ := startDaemon(t, l, []byte(cfg))
	d.waitState(10*time.Second, "isp1", monitor.Up)
	d.waitState(10*time.Second, "isp2", monitor.Up)
	host := netip.MustParseAddr("2001:db8:100::10") // the lab's static address of lan1
	translated := func(p string) string {
		b := host.As16()
		n := netip.MustParsePrefix(p).Addr().As16()
		copy(b[:8], n[:8])
		return netip.AddrFrom16(b).String()
	}
	var got string
	var err error
	for range 30 {
		if got, err = get6(l, host, time.Second); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := translated("2001:db8:1:100::/64"); err != nil || got != want {
		t.Fatalf("GET /ip from %s: %q, %v; want %s (isp1's prefix)", host, got, err, want)
	}
	// The host autoconfigures the internal prefix only.
	waitAddr(t, l, netip.MustParsePrefix("2001:db8:100::/64"), 5*time.Second, "internal address", func(a hostAddr) bool { return !a.Deprecated })
	if a, ok := addrIn(hostAddrs(t, l, "lan1"), netip.MustParsePrefix("2001:db8:1:100::/64")); ok {
		t.Errorf("host autoconfigured a provider prefix in nptv6 mode: %+v", a)
	}
	// Inbound (RFC 6296 is bidirectional): the host is reachable from the
	// Internet at its interface identifier in each provider prefix, and
	// the replies leave by the link the connection came in through.
	serveLANHost(t, l)
	reachLANHost(t, l, translated("2001:db8:1:100::/64"), translated("2001:db8:2:100::/64"))

	at, err := l.Fault("isp1", lab.Fault{Kind: lab.Blackhole})
	if err != nil {
		t.Fatal(err)
	}
	d.waitState(5*time.Second, "isp1", monitor.Down)
	want2 := translated("2001:db8:2:100::/64")
	var first time.Duration
	for time.Since(at) < 5*time.Second {
		if got, err = get6(l, host, 500*time.Millisecond); err == nil && got == want2 {
			first = time.Since(at)
			break
		}
	}
	if first == 0 {
		t.Fatalf("after isp1's failure: %q, %v; want %s", got, err, want2)
	}
	t.Logf("first new flow translated to isp2's prefix %s after the blackhole", first.Round(time.Millisecond))
	// A flow started through isp2 must keep isp2 (and its translation)
	// when new flows go back to isp1.
	echo := echoFrom(t, l, host)
	if err := echoRoundTrip(echo, 100); err != nil {
		t.Fatal(err)
	}
	if err := l.Restore("isp1"); err != nil {
		t.Fatal(err)
	}
	d.waitState(10*time.Second, "isp1", monitor.Up)
	time.Sleep(200 * time.Millisecond)
	if got, err := get6(l, host, 2*time.Second); err != nil || got != translated("2001:db8:1:100::/64") {
		t.Errorf("after recovery: %q, %v", got, err)
	}
	leavesBy(t, l, echo, "wan2", "wan1")
}

// TestIPv6ShutdownLeavesNothing: after SIGTERM the gateway has none of the
// daemon's IPv6 rules, addresses or NPTv6 table, keeps the addresses it had
// before (the lab's 2001:db8:100::1), and the host drops the RA router.
func TestIPv6ShutdownLeavesNothing(t *testing.T) {
	requireRoot(t)
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	setHostSysctls(t, l, "lan1")
	cfg := string(examples.Lab()) + nptv6Section
	d, _ := startDaemon(t, l, []byte(cfg))
	d.waitState(10*time.Second, "isp1", monitor.Up)
	gw := func(argv ...string) string {
		out, err := l.Run(context.Background(), "gw", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
		return string(out)
	}
	host := func(argv ...string) string {
		out, err := l.Run(context.Background(), "lan1", argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v %s", argv, err, out)
		}
		return string(out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(host("ip", "-6", "route", "show", "default"), "proto ra") {
		if time.Now().After(deadline) {
			t.Fatal("host never learnt the gateway from the RAs")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(gw("nft", "list", "tables"), "multihome_nptv6") || !strings.Contains(gw("ip", "-6", "rule"), "from 2001:db8:100::/64") {
		t.Fatal("nptv6 table or rules missing while running")
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d.logText())
	}
	if s := gw("nft", "list", "tables"); strings.Contains(s, "multihome_nptv6") {
		t.Errorf("nft tables after shutdown:\n%s", s)
	}
	if s := gw("ip", "-6", "rule"); strings.Contains(s, "3090") {
		t.Errorf("rules after shutdown:\n%s", s)
	}
	if s := gw("ip", "-6", "addr", "show", "dev", "lan0"); !strings.Contains(s, "2001:db8:100::1/64") {
		t.Errorf("the lab's own LAN address was removed:\n%s", s)
	}
	if s := host("ip", "-6", "route", "show", "default"); strings.Contains(s, "proto ra") {
		t.Errorf("host still uses the gateway learnt by RA after the final advertisement:\n%s", s)
	}
}

// ipv6View reads GET /api/v1/ipv6 from the daemon until ok accepts it
// (prefixes by prefix, pending ones by "pending:LINK"), and fails the
// test after timeout.
func ipv6View(t *testing.T, d *daemon, timeout time.Duration, what string, ok func(map[string]api.IPv6Prefix) bool) api.IPv6Status {
	t.Helper()
	c, err := api.NewClient(d.api, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.IPv6(ctx)
		cancel()
		m := map[string]api.IPv6Prefix{}
		for _, p := range st.Prefixes {
			k := p.Prefix.String()
			if p.State == api.IPv6Pending {
				k = "pending:" + p.Link
			}
			m[k] = p
		}
		if err == nil && ok(m) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("GET /api/v1/ipv6 %s: not so within %s (err %v):\n%s", what, timeout, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// prefixIs reports whether m has prefix p of link in state.
func prefixIs(m map[string]api.IPv6Prefix, p netip.Prefix, link, source, state string) bool {
	e, ok := m[p.String()]
	return ok && e.Link == link && e.Source == source && e.State == state
}
