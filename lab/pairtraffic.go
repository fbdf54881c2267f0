package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Measurements on a pair lab, shared by the ha package's tests, its
// benchmark and the demo.

// PairConfig is a pair node's multihome config: every ISP as a shared
// uplink (the node's own address for probes, a WAN virtual address for
// SNAT), probes at two core servers every 100 ms, VRRP every advert
// (e.g. "100ms"), the sync link, the state and the API socket (api.sock)
// in runDir. me is the node's index in p.Nodes.
func (p *Pair) PairConfig(me int, runDir, advert string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api: {listen: \"unix:%s/api.sock\"}\n", runDir)
	b.WriteString("defaults:\n  health: {interval: 100ms, down_after: 3, up_after: 3, hold_down: 1s}\nlinks:\n")
	for k, isp := range p.ISPs {
		fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    gateway4: %s\n    address4: %s\n    probes: [{target: %s}, {target: %s}]\n",
			isp.Name, isp.WAN, isp.Router, p.Nodes[me].WAN[k], ProbeTarget1, ProbeTarget2)
	}
	n, o := p.Nodes[me], p.Nodes[1-me]
	fmt.Fprintf(&b, "ha:\n  node: %s\n  partner: %s\n  advert_interval: %s\n  run_dir: %s\n", n.Role, o.Role, advert, runDir)
	fmt.Fprintf(&b, "  sync: {interface: %s, address: %s, partner: %s}\n", SyncIface, n.Sync, o.Sync.Addr())
	fmt.Fprintf(&b, "  instances:\n    - {interface: %s, vrid: 51, virtual_addresses: [%s]}\n", PairLANIface, p.LANVIP)
	for k, isp := range p.ISPs {
		fmt.Fprintf(&b, "    - {link: %s, vrid: %d, virtual_addresses: [%s]}\n", isp.Name, 52+k, p.WANVIP[k])
	}
	return b.String()
}

// Masters returns the gateways that hold the LAN's virtual address.
func (p *Pair) Masters() []string {
	var out []string
	for _, n := range p.Nodes {
		if has, err := p.Holds(n.Role, PairLANIface, p.LANVIP.Addr()); err == nil && has {
			out = append(out, n.Role)
		}
	}
	return out
}

// WaitOneMaster waits until exactly one gateway holds the LAN address.
func (p *Pair) WaitOneMaster(ctx context.Context, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if m := p.Masters(); len(m) == 1 {
			return m[0], nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("no single master within %s: %v", within, p.Masters())
}

// WatchMasters samples who holds the LAN address every 10 ms for d and
// returns every distinct set seen, in order.
func (p *Pair) WatchMasters(d time.Duration) [][]string {
	var seen [][]string
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		m := p.Masters()
		if len(seen) == 0 || !slices.Equal(seen[len(seen)-1], m) {
			seen = append(seen, m)
		}
	}
	return seen
}

// Other returns the other gateway's role.
func (p *Pair) Other(role string) string {
	if role == RoleGWA {
		return RoleGWB
	}
	return RoleGWA
}

// Flows are TCP connections from the first LAN host to the echo server,
// held open, each exchanging 8 bytes every 50 ms.
type Flows struct {
	conns []net.Conn
	mu    sync.Mutex
	err   []error
	last  []time.Time
	wg    sync.WaitGroup
	stop  chan struct{}
}

// HoldFlows opens n flows and keeps them talking until Close.
func (p *Pair) HoldFlows(ctx context.Context, n int) (*Flows, error) {
	f := &Flows{stop: make(chan struct{}), err: make([]error, n), last: make([]time.Time, n)}
	echo := netip.AddrPortFrom(p.Servers.Echo, 7).String()
	for i := range n {
		c, err := p.DialContext(ctx, p.Hosts[0].Name, "", "tcp", echo)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flow %d: %w", i, err)
		}
		f.conns = append(f.conns, c)
	}
	for i, c := range f.conns {
		f.wg.Go(func() { f.talk(i, c) })
	}
	return f, nil
}

func (f *Flows) talk(i int, c net.Conn) {
	msg := []byte(fmt.Sprintf("%08d", i))
	buf := make([]byte, len(msg))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		// Long enough for TCP's retransmission back-off through an
		// outage of a few seconds.
		c.SetDeadline(time.Now().Add(15 * time.Second))
		_, err := c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(c, buf)
		}
		if err == nil && !bytes.Equal(buf, msg) {
			err = fmt.Errorf("echo %q, want %q", buf, msg)
		}
		f.mu.Lock()
		if err != nil {
			f.err[i] = err
			f.mu.Unlock()
			return
		}
		f.last[i] = time.Now()
		f.mu.Unlock()
	}
}

// Alive counts the flows with no error and an echo after since, and
// describes the others.
func (f *Flows) Alive(since time.Time) (n int, broken []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.conns {
		switch {
		case f.err[i] != nil:
			broken = append(broken, fmt.Sprintf("flow %d: %v", i, f.err[i]))
		case f.last[i].After(since):
			n++
		default:
			broken = append(broken, fmt.Sprintf("flow %d: no echo since %s", i, since.Format("15:04:05.000")))
		}
	}
	return n, broken
}

// Settled reports whether every flow has echoed after since or failed.
func (f *Flows) Settled(since time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.conns {
		if f.err[i] == nil && !f.last[i].After(since) {
			return false
		}
	}
	return true
}

// WaitSettled waits up to limit for every flow to echo after since or
// fail (TCP's back-off decides when each tries again after an outage),
// and returns Alive(since).
func (f *Flows) WaitSettled(since time.Time, limit time.Duration) (int, []string) {
	for end := time.Now().Add(limit); time.Now().Before(end) && !f.Settled(since); {
		time.Sleep(100 * time.Millisecond)
	}
	return f.Alive(since)
}

// Close stops the flows and closes their connections.
func (f *Flows) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// FirstNewConnection opens a new connection from the first LAN host to
// the HTTP server every 20 ms (each given 300 ms) from start on, and
// returns how long after start the first one succeeded.
func (p *Pair) FirstNewConnection(ctx context.Context, start time.Time, limit time.Duration) (time.Duration, error) {
	http := netip.AddrPortFrom(p.Servers.HTTP, 80).String()
	ok := make(chan time.Time, 1)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		wg.Go(func() {
			dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer dcancel()
			c, err := p.DialContext(dctx, p.Hosts[0].Name, "", "tcp", http)
			if err == nil {
				c.Close()
				select {
				case ok <- time.Now():
				default:
				}
			}
		})
		select {
		case at := <-ok:
			return at.Sub(start), nil
		case <-ctx.Done():
			return 0, fmt.Errorf("no new connection within %s", limit)
		case <-tick.C:
		}
	}
}

// ConntrackMarks counts the ct marks of the echo flows in role's kernel.
func (p *Pair) ConntrackMarks(ctx context.Context, role string) (map[string]int, error) {
	out, err := p.Run(ctx, role, "conntrack", "-L", "-p", "tcp", "--dport", "7").Output()
	marks := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if m, ok := strings.CutPrefix(f, "mark="); ok {
				marks[m]++
			}
		}
	}
	return marks, err
}
