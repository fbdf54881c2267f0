package ifwatch

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SourceAddrs lists lk's global addresses of one family (4 or 6) that
// can source traffic, in the kernel's order: no secondary, tentative or
// deprecated address, no temporary (privacy) or DAD-failed IPv6
// address, no IPv6 link-local. The learned addresses, the monitor's
// probe sources and outbound's SNAT all choose among these. h reads them
// (nil: in the process's namespace).
func SourceAddrs(h *netlink.Handle, lk netlink.Link, family int) ([]netip.Addr, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	fam := netlink.FAMILY_V4
	bad := unix.IFA_F_SECONDARY | unix.IFA_F_TENTATIVE | unix.IFA_F_DEPRECATED
	if family == 6 {
		fam = netlink.FAMILY_V6
		bad = unix.IFA_F_TENTATIVE | unix.IFA_F_DEPRECATED | unix.IFA_F_TEMPORARY | unix.IFA_F_DADFAILED
	}
	as, err := h.AddrList(lk, fam)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if a.Scope != unix.RT_SCOPE_UNIVERSE || a.Flags&bad != 0 || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if family == 4 && !ip.Is4() || family == 6 && (ip.Is4() || ip.IsLinkLocalUnicast()) {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}
