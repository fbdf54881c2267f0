package outbound

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/multihome/multihome/config"
	"github.com/ti-mo/conntrack"
)

// tracker deletes and rewrites conntrack entries by mark, in one network
// namespace (nsFD, or the process's own when 0).
type tracker struct {
	nsFD int
}

func (t tracker) dial() (*conntrack.Conn, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: t.nsFD})
	if err != nil {
		return nil, fmt.Errorf("conntrack: %w", err)
	}
	return c, nil
}

// flush deletes every entry whose mark, masked, equals mark. It returns
// how many there were just before.
func (t tracker) flush(mark, mask uint32) (int, error) {
	c, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	f := conntrack.NewFilter().Mark(mark).MarkMask(mask)
	flows, err := c.DumpFilter(f, nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack dump: %w", err)
	}
	if len(flows) == 0 {
		return 0, nil
	}
	if err := c.FlushFilter(f); err != nil {
		return 0, fmt.Errorf("conntrack flush mark %#x/%#x: %w", mark, mask, err)
	}
	return len(flows), nil
}

// deleteMatching deletes the entries with mark/mask whose original tuple
// matches rule r (addresses, protocol, ports; iif and DSCP are not in
// conntrack and are ignored).
func (t tracker) deleteMatching(mark, mask uint32, r config.OutboundRule) (int, error) {
	c, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	flows, err := c.DumpFilter(conntrack.NewFilter().Mark(mark).MarkMask(mask), nil)
	if err != nil {
		return 0, fmt.Errorf("conntrack dump: %w", err)
	}
	n := 0
	var errs []error
	for _, f := range flows {
		if !flowMatches(f.TupleOrig, r) {
			continue
		}
		if err := c.Delete(f); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func inPorts(p uint16, ps config.Ports) bool {
	if len(ps) == 0 {
		return true
	}
	for _, r := range ps {
		if p >= r.From && p <= r.To {
			return true
		}
	}
	return false
}

func flowMatches(t conntrack.Tuple, r config.OutboundRule) bool {
	if !inPrefixes(t.IP.SourceAddress, r.Src) || !inPrefixes(t.IP.DestinationAddress, r.Dst) {
		return false
	}
	proto := map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
	if r.Proto != "" && t.Proto.Protocol != proto[r.Proto] {
		return false
	}
	if len(r.SPort)+len(r.DPort) > 0 {
		if t.Proto.Protocol != 6 && t.Proto.Protocol != 17 {
			return false
		}
		return inPorts(t.Proto.SourcePort, r.SPort) && inPorts(t.Proto.DestinationPort, r.DPort)
	}
	return true
}
