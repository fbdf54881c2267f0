package config

import (
	"fmt"
	"net/netip"
	"time"
)

// LinkBFD runs an asynchronous single-hop BFD session (RFC 5880/5881) to
// the link's next hop, independent of BGP: when a session that was up goes
// down, the link is down at once, as on a carrier loss; it never brings a
// link up (the probes do). docs/bfd.md.
type LinkBFD struct {
	// Peer is the next hop's address on the link (default: the link's
	// gateway4, else its gateway6). An IPv6 link-local peer is reached
	// through the link's interface.
	Peer netip.Addr `yaml:"peer"`
	// Local is our address for the session (default: the link's
	// address4/address6 of the peer's family, else the kernel's choice).
	Local netip.Addr `yaml:"local"`
	// MinTx is the desired minimum transmit interval (default 300ms).
	MinTx Duration `yaml:"min_tx"`
	// MinRx is the required minimum receive interval (default 300ms).
	MinRx Duration `yaml:"min_rx"`
	// Multiplier is the detection multiplier (default 3).
	Multiplier int `yaml:"multiplier"`
	// HoldUp is how long the session must have been up for its going
	// down to take the link down at once (default 5s, 0 disables): a
	// shorter-lived session's down is logged and counted, and the link's
	// probes decide (docs/bfd.md, "Hold-up").
	HoldUp *Duration `yaml:"hold_up"`
}

// DefaultBFDHoldUp is the default hold-up of link and neighbour BFD.
const DefaultBFDHoldUp = 5 * time.Second

// holdUp is the hold-up in force (the default until checked).
func holdUp(d *Duration) time.Duration {
	if d == nil {
		return DefaultBFDHoldUp
	}
	return d.D()
}

// HoldUpD is the link session's hold-up.
func (f *LinkBFD) HoldUpD() time.Duration { return holdUp(f.HoldUp) }

// HoldUpD is the neighbour session's hold-up.
func (f *BFD) HoldUpD() time.Duration { return holdUp(f.HoldUp) }

// checkHoldUp fills in and validates a hold_up at path p.
func checkHoldUp(k *checker, p string, d **Duration) {
	if *d == nil {
		v := Duration(DefaultBFDHoldUp)
		*d = &v
	}
	if v := (*d).D(); v < 0 || v > time.Hour {
		k.errorf(p, "must be 0 (off) to 1h, got %v", v)
	}
}

// maxBFDInterval is the largest interval a BFD packet can carry
// (32 bits of microseconds).
const maxBFDInterval = time.Duration(1<<32-1) * time.Microsecond

func init() { sectionChecks = append(sectionChecks, checkLinkBFD) }

// checkLinkBFD fills in the defaults of every links[].bfd and validates
// them.
func checkLinkBFD(c *Config, k *checker) {
	for i := range c.Links {
		l := &c.Links[i]
		f := l.BFD
		if f == nil {
			continue
		}
		p := fmt.Sprintf("links[%d].bfd", i)
		if !f.Peer.IsValid() {
			switch {
			case l.Gateway4.IsValid():
				f.Peer = l.Gateway4
			case l.Gateway6.IsValid():
				f.Peer = l.Gateway6
			default:
				k.errorf(p+".peer", "missing: give the next hop's address, or a gateway4/gateway6 on the link")
			}
		}
		if a := f.Peer; a.IsValid() {
			switch {
			case a.Is4In6():
				k.errorf(p+".peer", "%s is an IPv4-mapped address: write it as %s", a, a.Unmap())
			case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
				k.errorf(p+".peer", "%s is not a unicast next hop", a)
			case a.Zone() != "" && a.Zone() != l.Interface:
				k.errorf(p+".peer", "zone %q is not the link's interface %q", a.Zone(), l.Interface)
			}
		}
		if !f.Local.IsValid() && f.Peer.IsValid() {
			if f.Peer.Is4() {
				f.Local = l.Address4
			} else if !f.Peer.IsLinkLocalUnicast() {
				f.Local = l.Address6
			}
		}
		if f.Local.IsValid() && f.Peer.IsValid() && f.Local.Is4() != f.Peer.Is4() {
			k.errorf(p+".local", "%s is not of the peer's family (%s)", f.Local, f.Peer)
		}
		defDur(&f.MinTx, DefaultBFDInterval)
		defDur(&f.MinRx, DefaultBFDInterval)
		if f.Multiplier == 0 {
			f.Multiplier = DefaultBFDMultiplier
		}
		if f.Multiplier < 1 || f.Multiplier > 255 {
			k.errorf(p+".multiplier", "must be 1..255, got %d", f.Multiplier)
		}
		checkHoldUp(k, p+".hold_up", &f.HoldUp)
		for _, d := range []struct {
			name string
			v    Duration
		}{{"min_tx", f.MinTx}, {"min_rx", f.MinRx}} {
			if d.v.D() < time.Millisecond || d.v.D() > maxBFDInterval {
				k.errorf(p+"."+d.name, "must be 1ms..%v, got %v", maxBFDInterval.Round(time.Second), d.v.D())
			}
		}
	}
}

// checkSharedBFD checks a link's bfd against a BGP neighbour's bfd to the
// same peer on the same link (run by checkBGP, once both are defaulted).
// BFD demultiplexes single-hop sessions by interface and peer address,
// so the two share one session (bfd.Manager): its timers and local
// address must be the same; each keeps its own hold_up. One error per
// differing field, at the link's field, naming the neighbour's with its
// line; a field already reported invalid is not compared again.
func checkSharedBFD(c *Config, k *checker) {
	for i := range c.Links {
		l := &c.Links[i]
		f := l.BFD
		if f == nil || !f.Peer.IsValid() {
			continue
		}
		for j := range c.BGP.Neighbors {
			n := &c.BGP.Neighbors[j]
			if n.BFD == nil || n.Link != l.Name || n.Address.WithZone("") != f.Peer.WithZone("") {
				continue
			}
			lp, np := fmt.Sprintf("links[%d]", i), fmt.Sprintf("bgp.neighbors[%d]", j)
			localOK := (!f.Local.IsValid() || f.Local.Is4() == f.Peer.Is4()) && (!n.LocalAddress.IsValid() || n.LocalAddress.Is4() == n.Address.Is4())
			for _, d := range []struct {
				what, field, nfield string
				lv, nv              string
				valid               bool
			}{
				{"min_tx", "bfd.min_tx", "bfd.min_tx", f.MinTx.D().String(), n.BFD.MinTx.D().String(), validInterval(f.MinTx) && validInterval(n.BFD.MinTx)},
				{"min_rx", "bfd.min_rx", "bfd.min_rx", f.MinRx.D().String(), n.BFD.MinRx.D().String(), validInterval(f.MinRx) && validInterval(n.BFD.MinRx)},
				{"multiplier", "bfd.multiplier", "bfd.multiplier", fmt.Sprint(f.Multiplier), fmt.Sprint(n.BFD.Multiplier), validMult(f.Multiplier) && validMult(n.BFD.Multiplier)},
				{"local address", "bfd.local", "local_address", addrOrKernel(f.Local), addrOrKernel(n.LocalAddress), localOK},
			} {
				if !d.valid || d.lv == d.nv {
					continue
				}
				k.errorf(lp+"."+d.field, "%s%s differs from %s.%s (%s%s, %s:%d): %s.bfd and %s.bfd are one BFD session to %s on link %s; give both the same %s (hold_up may differ)",
					d.lv, c.defaulted(lp+"."+d.field), np, d.nfield, d.nv, c.defaulted(np+"."+d.nfield), c.File, c.Position(np+"."+d.nfield).Line,
					lp, np, f.Peer, l.Name, d.what)
			}
		}
	}
}

// defaulted is " by default" when the field at path was not written.
func (c *Config) defaulted(path string) string {
	if c.Has(path) {
		return ""
	}
	return " by default"
}

func validInterval(d Duration) bool { return d.D() >= time.Millisecond && d.D() <= maxBFDInterval }

func validMult(m int) bool { return m >= 1 && m <= 255 }

func addrOrKernel(a netip.Addr) string {
	if !a.IsValid() {
		return "none (the kernel's choice)"
	}
	return a.String()
}
