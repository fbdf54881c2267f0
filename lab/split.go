package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// A split-uplinks pair lab: the pair lab's namespaces (two gateways on a
// LAN switch, a sync link between them, the ISPs, the core and its
// servers), but ISP 1's handoff reaches gwa only and ISP 2's gwb only.
// Each gateway reaches the other's ISP over the sync link, which is then
// also the transit link (docs/ha.md, "Split uplinks").

// UpSplitPair builds a split-uplinks pair lab: spec.ISPs must be 2 (or
// 0, the default).
func UpSplitPair(ctx context.Context, spec Spec, log *slog.Logger) (*Pair, error) {
	if spec.ISPs != 0 && spec.ISPs != 2 {
		return nil, errors.New("split pair lab: two ISPs, one per gateway")
	}
	return upPair(ctx, spec, log, true)
}

// SplitPairConfig is a split pair node's multihome config: its own ISP
// (its own address, SNAT to it) and the partner's ISP as a transit link
// over the sync link (gateway4 the partner's sync address, snat false),
// in the same order on both nodes (isp1, isp2); every link probed at two
// core servers every 100 ms, so the transit link's probes cross the
// partner's uplink; one LAN VRRP instance every advert (e.g. "100ms");
// state and the API socket (api.sock) in runDir. me is the node's index
// in p.Nodes.
func (p *Pair) SplitPairConfig(me int, runDir, advert string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "api: {listen: \"unix:%s/api.sock\"}\n", runDir)
	b.WriteString("defaults:\n  health: {interval: 100ms, down_after: 3, up_after: 3, hold_down: 1s}\nlinks:\n")
	n, o := p.Nodes[me], p.Nodes[1-me]
	for k, isp := range p.ISPs {
		if p.Reaches(me, isp) {
			fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    gateway4: %s\n    address4: %s\n", isp.Name, isp.WAN, isp.Router, n.WAN[k])
		} else {
			fmt.Fprintf(&b, "  - name: %s\n    interface: %s\n    gateway4: %s\n    snat: false\n", isp.Name, SyncIface, o.Sync.Addr())
		}
		fmt.Fprintf(&b, "    probes: [{target: %s}, {target: %s}]\n", ProbeTarget1, ProbeTarget2)
	}
	fmt.Fprintf(&b, "ha:\n  node: %s\n  partner: %s\n  advert_interval: %s\n  run_dir: %s\n", n.Role, o.Role, advert, runDir)
	fmt.Fprintf(&b, "  sync: {interface: %s, address: %s, partner: %s}\n", SyncIface, n.Sync, o.Sync.Addr())
	fmt.Fprintf(&b, "  instances:\n    - {interface: %s, vrid: 51, virtual_addresses: [%s]}\n", PairLANIface, p.LANVIP)
	return b.String()
}

// Ports returns each flow's local (LAN host) port, in flow order.
func (f *Flows) Ports() []int {
	out := make([]int, len(f.conns))
	for i, c := range f.conns {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			out[i] = a.Port
		}
	}
	return out
}

// AliveEach reports, per flow, whether it has no error and echoed after
// since.
func (f *Flows) AliveEach(since time.Time) []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bool, len(f.conns))
	for i := range f.conns {
		out[i] = f.err[i] == nil && f.last[i].After(since)
	}
	return out
}

// ConntrackSourcePorts returns the original source ports of the echo
// flows in role's conntrack table with ct mark mark (e.g. "0x20000"; ""
// for any mark).
func (p *Pair) ConntrackSourcePorts(ctx context.Context, role, mark string) (map[int]bool, error) {
	out, err := p.Run(ctx, role, "conntrack", "-L", "-p", "tcp", "--dport", "7").Output()
	ports := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		var sport int
		m := ""
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "sport="); ok && sport == 0 {
				sport, _ = strconv.Atoi(v)
			}
			if v, ok := strings.CutPrefix(f, "mark="); ok {
				m = v
			}
		}
		if sport > 0 && (mark == "" || markEqual(m, mark)) {
			ports[sport] = true
		}
	}
	return ports, err
}

// markEqual compares two marks written in decimal or 0x-hex.
func markEqual(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 0, 32)
	y, err2 := strconv.ParseUint(b, 0, 32)
	return err1 == nil && err2 == nil && x == y
}
