package bgp

import (
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// warnUnrouted logs the prefixes this host has no route for (other than
// a default route), in any table: announcing them attracts traffic the
// site cannot deliver. A route for part of a prefix (the LAN /64 of an
// announced /48) counts.
func warnUnrouted(log *slog.Logger, prefixes []netip.Prefix) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			log.Debug("cannot list routes to check the announced prefixes", "err", err)
			return
		}
		for _, p := range prefixes {
			if p.Addr().Is4() != (fam == netlink.FAMILY_V4) {
				continue
			}
			found := false
			for _, r := range routes {
				if r.Dst == nil {
					continue
				}
				d, ok := netip.AddrFromSlice(r.Dst.IP)
				bits, _ := r.Dst.Mask.Size()
				if !ok || bits == 0 {
					continue
				}
				if netip.PrefixFrom(d.Unmap(), bits).Overlaps(p) {
					found = true
					break
				}
			}
			if !found {
				log.Warn("announcing a prefix this host has no route for: traffic to it will follow the default route back out", "prefix", p)
			}
		}
	}
}
