package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// settleTimeout bounds the wait for a freshly built lab's paths to answer.
const settleTimeout = 5 * time.Second

// settle waits until the paths tests use first answer: from the gateway
// through each ISP to the probe targets and from each LAN host to the
// gateway, over IPv4 and IPv6. A freshly raised interface joins its IPv6
// solicited-node groups asynchronously: in about 6 % of builds the first
// neighbour solicitation on some hop went unanswered and the first IPv6
// packet waited for the retransmission, 1 s later, longer than a test's
// first probe or ping waits. After settle the neighbour caches are warm
// and every path has answered once.
func (l *Lab) settle(ctx context.Context) error {
	type path struct {
		role, dev string
		dst       netip.Addr
	}
	var paths []path
	for _, isp := range l.ISPs {
		paths = append(paths,
			path{RoleGW, isp.WAN, netip.MustParseAddr(ProbeTarget1)},
			path{RoleGW, isp.WAN, netip.MustParseAddr(ProbeTarget61)})
	}
	for _, h := range l.Hosts {
		paths = append(paths, path{h.Name, "", l.GWLAN}, path{h.Name, "", l.GWLAN6})
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for _, p := range paths {
		// One echo every 100 ms until one is answered (-c1) or the
		// deadline (-w) passes.
		argv := []string{"ping", "-q", "-n", "-c1", "-i0.1", "-W1", "-w", fmt.Sprint(int(settleTimeout / time.Second))}
		if p.dev != "" {
			argv = append(argv, "-I", p.dev)
		}
		argv = append(argv, p.dst.String())
		if out, err := l.Run(ctx, p.role, argv...).CombinedOutput(); err != nil {
			return fmt.Errorf("lab %s: %s cannot reach %s%s within %v: %v\n%s", l.Spec.Name, p.role, p.dst, onDev(p.dev), settleTimeout, err, out)
		}
	}
	return nil
}

func onDev(dev string) string {
	if dev == "" {
		return ""
	}
	return " on " + dev
}
