package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolver is the address of a DNS resolver reached through a link,
// written "198.51.100.53", "198.51.100.53:5353", "2001:db8::53" or
// "[2001:db8::53]:53"; the port defaults to 53. An IPv6 link-local
// address needs its zone, the link's interface: "fe80::53%wan1".
type Resolver struct{ netip.AddrPort }

// UnmarshalText reads an address with an optional port.
func (r *Resolver) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" {
		return errors.New("empty resolver address")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		r.AddrPort = netip.AddrPortFrom(a, 53)
		return nil
	}
	h, ps, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not an address or address:port", s)
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", h)
	}
	if a.Is6() && !a.Is4In6() && !strings.HasPrefix(s, "[") {
		return fmt.Errorf("%q: write an IPv6 address with a port as [address]:port", s)
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("bad port %q in %q", ps, s)
	}
	r.AddrPort = netip.AddrPortFrom(a, uint16(n))
	return nil
}

// MarshalText writes the address, with its port unless it is 53.
func (r Resolver) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// String is the address, with the port only when it is not 53.
func (r Resolver) String() string {
	if r.Port() == 53 {
		return r.Addr().String()
	}
	return r.AddrPort.String()
}

func init() { sectionChecks = append(sectionChecks, checkResolvers) }

// checkResolvers validates defaults.resolvers and links[].resolvers, gives
// every link without resolvers the defaults, and refuses host-name probe
// targets on a link without resolvers: the system's resolver (often on
// loopback or the LAN) is not reached through the link, and an answer
// that came through another link proves nothing about this one.
func checkResolvers(c *Config, k *checker) {
	checkResolverList(k, "defaults.resolvers", c.Defaults.Resolvers, "")
	for i := range c.Links {
		l := &c.Links[i]
		p := fmt.Sprintf("links[%d]", i)
		checkResolverList(k, p+".resolvers", l.Resolvers, l.Interface)
		if len(l.Resolvers) == 0 {
			l.Resolvers = append([]Resolver(nil), c.Defaults.Resolvers...)
		}
		if len(l.Resolvers) > 0 {
			continue
		}
		for j, pr := range l.Probes {
			if h := probeHost(pr); h != "" {
				k.errorf(fmt.Sprintf("%s.probes[%d].target", p, j),
					"%s is a host name: give %s.resolvers (the system resolver is not reached through the link)", h, p)
			}
		}
	}
}

func checkResolverList(k *checker, p string, rs []Resolver, iface string) {
	through := "the link"
	if iface != "" {
		through = iface
	}
	seen := map[Resolver]int{}
	for i, r := range rs {
		f := fmt.Sprintf("%s[%d]", p, i)
		a := r.Addr()
		switch {
		case !a.IsValid():
			continue // reported by the decoder
		case a.Is4In6():
			k.errorf(f, "%s is an IPv4-mapped address: write it as %s", a, a.Unmap())
		case a.IsLoopback():
			k.errorf(f, "%s: a resolver reached through %s cannot be on loopback", a, through)
		case a.IsUnspecified() || a.IsMulticast():
			k.errorf(f, "%s is not a unicast address", a)
		case a.IsLinkLocalUnicast() && a.Is4():
			k.errorf(f, "%s is an IPv4 link-local address: a resolver must be routable", a)
		case a.Is6() && a.IsLinkLocalUnicast() && iface == "":
			k.errorf(f, "%s is link-local: it belongs in one link's resolvers, with the zone (its interface)", a)
		case a.IsLinkLocalUnicast() && a.Zone() == "":
			k.errorf(f, "%s is link-local: give its zone, the link's interface (%s%%%s)", a, a, through)
		case a.Zone() != "" && !a.IsLinkLocalUnicast():
			k.errorf(f, "%s: a zone is only for link-local addresses", a)
		case a.Zone() != "" && a.Zone() != iface:
			k.errorf(f, "zone %q is not the link's interface %q", a.Zone(), iface)
		default:
			if j, dup := seen[r]; dup {
				k.errorf(f, "%s is listed twice (also %s[%d])", r, p, j)
			}
			seen[r] = i
		}
	}
}

// probeHost returns the host name a probe's target must be resolved
// from, or "" when the target is an IP address (or the probe type takes
// only addresses).
func probeHost(pr Probe) string {
	switch pr.Type {
	case ProbeHTTP, ProbeHTTPS: // tcp, icmp and dns take addresses only
	default:
		return ""
	}
	h := pr.Target
	if strings.Contains(h, "/") {
		return "" // reported by checkProbe
	}
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "" {
		return ""
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	return h
}
