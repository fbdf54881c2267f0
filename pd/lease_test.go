package pd

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	testIAID   = [4]byte{1, 2, 3, 4}
	testServer = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x53}}
)

func iaPrefix(p string, pref, valid time.Duration) *dhcpv6.OptIAPrefix {
	pp := netip.MustParsePrefix(p)
	return &dhcpv6.OptIAPrefix{PreferredLifetime: pref, ValidLifetime: valid, Prefix: &net.IPNet{IP: pp.Addr().AsSlice(), Mask: net.CIDRMask(pp.Bits(), 128)}}
}

func reply(t1, t2 time.Duration, opts ...dhcpv6.Option) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply}
	m.AddOption(dhcpv6.OptClientID(clientDUID))
	m.AddOption(dhcpv6.OptServerID(testServer))
	ia := &dhcpv6.OptIAPD{IaId: testIAID, T1: t1, T2: t2}
	for _, o := range opts {
		ia.Options.Add(o)
	}
	m.AddOption(ia)
	return m
}

func TestParseLease(t *testing.T) {
	now := time.Unix(1e9, 0)
	cur := netip.MustParsePrefix("2001:db8:1:8000::/56")
	for _, c := range []struct {
		name           string
		m              *dhcpv6.Message
		want           string
		t1, t2, pr, va time.Duration
		err            error
	}{
		{name: "plain", m: reply(100*time.Second, 160*time.Second, iaPrefix("2001:db8:1:8000::/56", 200*time.Second, 300*time.Second)),
			want: "2001:db8:1:8000::/56", t1: 100 * time.Second, t2: 160 * time.Second, pr: 200 * time.Second, va: 300 * time.Second},
		{name: "T1 and T2 chosen by the client", m: reply(0, 0, iaPrefix("2001:db8:1:8000::/56", 200*time.Second, 300*time.Second)),
			want: "2001:db8:1:8000::/56", t1: 100 * time.Second, t2: 160 * time.Second, pr: 200 * time.Second, va: 300 * time.Second},
		{name: "current kept over a longer one", m: reply(1, 2, iaPrefix("2001:db8:1:4000::/56", 9*time.Second, 9*time.Second), iaPrefix("2001:db8:1:8000::/56", 3*time.Second, 4*time.Second)),
			want: "2001:db8:1:8000::/56", t1: 1, t2: 2, pr: 3 * time.Second, va: 4 * time.Second},
		{name: "current returned with lifetime 0, another offered", m: reply(1, 2, iaPrefix("2001:db8:1:8000::/56", 0, 0), iaPrefix("2001:db8:1:4000::/56", 3*time.Second, 4*time.Second)),
			want: "2001:db8:1:4000::/56", t1: 1, t2: 2, pr: 3 * time.Second, va: 4 * time.Second},
		{name: "current returned with lifetime 0 only", m: reply(1, 2, iaPrefix("2001:db8:1:8000::/56", 0, 0)), err: ErrNoBinding},
		{name: "preferred above valid ignored", m: reply(1, 2, iaPrefix("2001:db8:1:4000::/56", 5*time.Second, 4*time.Second)), err: ErrNoPrefixAvail},
		{name: "longer than /64 ignored", m: reply(1, 2, iaPrefix("2001:db8:1:4000::/80", 3*time.Second, 4*time.Second)), err: ErrNoPrefixAvail},
		{name: "NoBinding", m: reply(0, 0, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding}), err: ErrNoBinding},
		{name: "NoPrefixAvail", m: reply(0, 0, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoPrefixAvail}), err: ErrNoPrefixAvail},
		{name: "T1 above T2", m: reply(5*time.Second, 2*time.Second, iaPrefix("2001:db8:1:8000::/56", 3*time.Second, 4*time.Second)), err: errAny},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := parseLease(c.m, clientDUID, testIAID, now, cur)
			if c.err != nil {
				if err == nil || (c.err != errAny && !errors.Is(err, c.err)) {
					t.Fatalf("got %+v, %v; want error %v", l, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Prefix.String() != c.want || l.T1.Sub(now) != c.t1 || l.T2.Sub(now) != c.t2 || l.Preferred.Sub(now) != c.pr || l.Valid.Sub(now) != c.va {
				t.Errorf("got %s T1 %s T2 %s pref %s valid %s", l.Prefix, l.T1.Sub(now), l.T2.Sub(now), l.Preferred.Sub(now), l.Valid.Sub(now))
			}
			if !l.Server.Equal(testServer) {
				t.Errorf("server %v", l.Server)
			}
		})
	}
	// Not ours.
	m := reply(1, 2, iaPrefix("2001:db8:1:8000::/56", 3*time.Second, 4*time.Second))
	if _, err := parseLease(m, testServer, testIAID, now, cur); err == nil {
		t.Error("accepted a reply for another client ID")
	}
	if _, err := parseLease(m, clientDUID, [4]byte{9}, now, cur); err == nil {
		t.Error("accepted a reply for another IAID")
	}
}

var errAny = errors.New("any error")

// FuzzParseLease: whatever a server sends, parsing neither panics nor
// yields an inconsistent lease.
func FuzzParseLease(f *testing.F) {
	f.Add(reply(100*time.Second, 160*time.Second, iaPrefix("2001:db8:1:8000::/56", 200*time.Second, 300*time.Second)).ToBytes())
	f.Add(reply(0, 0, iaPrefix("2001:db8:1:8000::/56", 0, 0), iaPrefix("2001:db8:1:4000::/60", 3*time.Second, 4*time.Second)).ToBytes())
	f.Add(reply(0, 0, &dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding}).ToBytes())
	now := time.Unix(1e9, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		l, err := parseLease(m, clientDUID, testIAID, now, netip.MustParsePrefix("2001:db8:1:8000::/56"))
		if err != nil {
			return
		}
		if !l.Prefix.IsValid() || !l.Prefix.Addr().Is6() || l.Prefix.Bits() > 64 || l.Prefix.Masked() != l.Prefix {
			t.Fatalf("bad prefix %s", l.Prefix)
		}
		if l.Preferred.After(l.Valid) || !l.Valid.After(now) || l.T1.After(l.T2) || l.Server == nil {
			t.Fatalf("inconsistent lease %+v", l)
		}
	})
}
