package pd

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// Lease is a delegation held on a link, or its loss.
type Lease struct {
	Link string
	// Prefix is the delegated prefix (invalid when Lost).
	Prefix netip.Prefix
	// Preferred and Valid are when the prefix's lifetimes end, T1 and T2
	// when the client renews and rebinds, unless the lease is extended.
	Preferred, Valid time.Time
	T1, T2           time.Time
	// Server is the DUID of the server that delegated it (nil: unknown,
	// the client rebinds instead of renewing).
	Server dhcpv6.DUID
	// Obtained is when the Reply granting these lifetimes came.
	Obtained time.Time
	// Lost: the delegation ended (valid lifetime over, or the server took
	// it back) and no other was obtained.
	Lost bool
}

// Errors a server's answer can carry for the IA_PD.
var (
	ErrNoBinding     = errors.New("server has no binding for the IA_PD (NoBinding)")
	ErrNoPrefixAvail = errors.New("server has no prefix to delegate (NoPrefixAvail)")
)

// StatusError is any other status code a server answered with.
type StatusError struct {
	Code    iana.StatusCode
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server status %s: %q", e.Code, e.Message)
}

func statusErr(s *dhcpv6.OptStatusCode) error {
	switch {
	case s == nil || s.StatusCode == iana.StatusSuccess:
		return nil
	case s.StatusCode == iana.StatusNoBinding:
		return ErrNoBinding
	case s.StatusCode == iana.StatusNoPrefixAvail:
		return ErrNoPrefixAvail
	}
	return &StatusError{Code: s.StatusCode, Message: s.StatusMessage}
}

// infinity is RFC 8415's 0xffffffff lifetime; durations at or above it
// never end (a lease never expires, T1 is never reached).
const infinity = time.Duration(0xffffffff) * time.Second

func at(now time.Time, d time.Duration) time.Time {
	if d >= infinity {
		return now.Add(100 * 365 * 24 * time.Hour)
	}
	return now.Add(d)
}

// parseLease reads the lease a server offers (Advertise) or grants
// (Reply) for our IA_PD. It checks the transaction's identities, the
// status codes and the lifetimes (RFC 8415 18.2.10, 21.21, 21.22):
// prefixes whose preferred lifetime exceeds the valid one, with a valid
// lifetime of 0, longer than /64 or not IPv6 are ignored; among the rest
// the current prefix is kept if it is still offered, else the one with
// the longest valid lifetime. T1/T2 of 0 are chosen by the client
// (0.5 and 0.8 of the preferred lifetime).
func parseLease(m *dhcpv6.Message, clientID dhcpv6.DUID, iaid [4]byte, now time.Time, current netip.Prefix) (Lease, error) {
	if m == nil {
		return Lease{}, errors.New("no message")
	}
	if cid := m.Options.ClientID(); cid == nil || !cid.Equal(clientID) {
		return Lease{}, errors.New("not for our client ID")
	}
	sid := m.Options.ServerID()
	if sid == nil {
		return Lease{}, errors.New("no server ID")
	}
	if err := statusErr(m.Options.Status()); err != nil {
		return Lease{}, err
	}
	var ia *dhcpv6.OptIAPD
	for _, x := range m.Options.IAPD() {
		if x.IaId == iaid {
			ia = x
			break
		}
	}
	if ia == nil {
		return Lease{}, errors.New("no IA_PD for our IAID")
	}
	if err := statusErr(ia.Options.Status()); err != nil {
		return Lease{}, err
	}
	if ia.T2 != 0 && ia.T1 > ia.T2 {
		return Lease{}, fmt.Errorf("IA_PD T1 %s above T2 %s", ia.T1, ia.T2)
	}
	var best *dhcpv6.OptIAPrefix
	var bestP netip.Prefix
	sawCurrent := false
	for _, o := range ia.Options.Prefixes() {
		if o.Prefix == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(o.Prefix.IP)
		if !ok || !a.Is6() || a.Is4In6() {
			continue
		}
		ones, bits := o.Prefix.Mask.Size()
		if bits != 128 || ones > 64 || ones == 0 {
			continue
		}
		p := netip.PrefixFrom(a, ones).Masked()
		if p == current {
			sawCurrent = true
		}
		if o.ValidLifetime == 0 || o.PreferredLifetime > o.ValidLifetime || statusErr(o.Options.Status()) != nil {
			continue
		}
		if best == nil || p == current || (bestP != current && o.ValidLifetime > best.ValidLifetime) {
			best, bestP = o, p
		}
	}
	if best == nil {
		if sawCurrent {
			return Lease{}, ErrNoBinding // our prefix given back with lifetime 0 and nothing else
		}
		return Lease{}, ErrNoPrefixAvail
	}
	t1, t2 := ia.T1, ia.T2
	if t1 == 0 && t2 == 0 {
		t1, t2 = best.PreferredLifetime/2, best.PreferredLifetime*4/5
	} else if t2 == 0 {
		t2 = max(t1, best.PreferredLifetime*4/5)
	}
	if t1 == 0 {
		t1 = t2 * 5 / 8
	}
	return Lease{Prefix: bestP, Server: sid, Obtained: now,
		Preferred: at(now, best.PreferredLifetime), Valid: at(now, best.ValidLifetime),
		T1: at(now, t1), T2: at(now, t2)}, nil
}
