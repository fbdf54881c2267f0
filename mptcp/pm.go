package mptcp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Generic netlink family "mptcp_pm" (include/uapi/linux/mptcp_pm.h,
// Documentation/netlink/specs/mptcp_pm.yaml).
const (
	familyName = "mptcp_pm"

	cmdAddAddr   = 1
	cmdDelAddr   = 2
	cmdGetAddr   = 3
	cmdSetLimits = 5
	cmdGetLimits = 6
	cmdSetFlags  = 7

	attrAddr         = 1 // nested address
	attrRcvAddAddrs  = 2 // u32
	attrSubflows     = 3 // u32
	addrAttrFamily   = 1 // u16
	addrAttrID       = 2 // u8
	addrAttrAddr4    = 3 // 4 bytes, network order
	addrAttrAddr6    = 4 // 16 bytes
	addrAttrPort     = 5 // u16
	addrAttrFlags    = 6 // u32
	addrAttrIfIdx    = 7 // s32
	defaultPMVersion = 1
)

// Flags are an endpoint's MPTCP_PM_ADDR_FLAG_* bits.
type Flags uint32

// Endpoint flags.
const (
	Signal   Flags = 1 << 0
	Subflow  Flags = 1 << 1
	Backup   Flags = 1 << 2
	Fullmesh Flags = 1 << 3
	Implicit Flags = 1 << 4
)

// String renders flags as ip mptcp does: "subflow backup".
func (f Flags) String() string {
	s := ""
	for _, n := range []struct {
		f    Flags
		name string
	}{{Signal, "signal"}, {Subflow, "subflow"}, {Backup, "backup"}, {Fullmesh, "fullmesh"}, {Implicit, "implicit"}} {
		if f&n.f != 0 {
			if s != "" {
				s += " "
			}
			s += n.name
		}
	}
	return s
}

// Endpoint is one entry of the kernel's endpoint table.
type Endpoint struct {
	ID      uint8
	Addr    netip.Addr
	Port    uint16
	Flags   Flags
	IfIndex int32
}

// Limits are the kernel's per-connection limits: extra subflows, and
// addresses accepted from the peer's ADD_ADDR.
type Limits struct {
	Subflows        uint32 `json:"subflows"`
	AddAddrAccepted uint32 `json:"add_addr_accepted"`
}

// Conn talks to the path manager of the network namespace it was opened
// in.
type Conn struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

// ErrNoMPTCP is returned by Dial when the kernel has no MPTCP path manager.
var ErrNoMPTCP = errors.New("the kernel has no MPTCP path manager (generic netlink family mptcp_pm)")

// Dial opens a generic netlink socket to the path manager of the calling
// thread's network namespace.
func Dial() (*Conn, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("mptcp: generic netlink: %w", err)
	}
	fam, err := c.GetFamily(familyName)
	if err != nil {
		c.Close()
		if errors.Is(err, unix.ENOENT) {
			return nil, ErrNoMPTCP
		}
		return nil, fmt.Errorf("mptcp: family %s: %w", familyName, err)
	}
	return &Conn{c: c, fam: fam}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

func (c *Conn) do(cmd uint8, flags netlink.HeaderFlags, enc func(*netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	var data []byte
	if enc != nil {
		ae := netlink.NewAttributeEncoder()
		enc(ae)
		b, err := ae.Encode()
		if err != nil {
			return nil, err
		}
		data = b
	}
	ver := c.fam.Version
	if ver == 0 {
		ver = defaultPMVersion
	}
	return c.c.Execute(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: ver}, Data: data}, c.fam.ID, flags)
}

// Endpoints lists the endpoint table.
func (c *Conn) Endpoints() ([]Endpoint, error) {
	msgs, err := c.do(cmdGetAddr, netlink.Request|netlink.Dump, nil)
	if err != nil {
		return nil, fmt.Errorf("mptcp: list endpoints: %w", err)
	}
	var eps []Endpoint
	for _, m := range msgs {
		ep, ok, err := parseEndpointMsg(m.Data)
		if err != nil {
			return nil, fmt.Errorf("mptcp: list endpoints: %w", err)
		}
		if ok {
			eps = append(eps, ep)
		}
	}
	return eps, nil
}

// parseEndpointMsg reads one GET_ADDR answer: an MPTCP_PM_ATTR_ADDR nest.
func parseEndpointMsg(b []byte) (Endpoint, bool, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Endpoint{}, false, err
	}
	var ep Endpoint
	found := false
	for ad.Next() {
		if ad.Type() != attrAddr {
			continue
		}
		found = true
		ad.Nested(func(nd *netlink.AttributeDecoder) error {
			ep, err = decodeAddr(nd)
			return err
		})
	}
	if err := ad.Err(); err != nil {
		return Endpoint{}, false, err
	}
	return ep, found, nil
}

func decodeAddr(nd *netlink.AttributeDecoder) (Endpoint, error) {
	var ep Endpoint
	for nd.Next() {
		switch nd.Type() {
		case addrAttrID:
			ep.ID = nd.Uint8()
		case addrAttrAddr4:
			if a, ok := netip.AddrFromSlice(nd.Bytes()); ok && a.Is4() {
				ep.Addr = a
			} else {
				return ep, fmt.Errorf("bad IPv4 address attribute")
			}
		case addrAttrAddr6:
			if a, ok := netip.AddrFromSlice(nd.Bytes()); ok && a.Is6() {
				ep.Addr = a
			} else {
				return ep, fmt.Errorf("bad IPv6 address attribute")
			}
		case addrAttrPort:
			ep.Port = nd.Uint16()
		case addrAttrFlags:
			ep.Flags = Flags(nd.Uint32())
		case addrAttrIfIdx:
			ep.IfIndex = nd.Int32()
		}
	}
	return ep, nil
}

func encodeAddr(ae *netlink.AttributeEncoder, ep Endpoint, full bool) {
	ae.Nested(attrAddr, func(n *netlink.AttributeEncoder) error {
		n.Uint8(addrAttrID, ep.ID)
		if full {
			if ep.Addr.Is4() {
				n.Uint16(addrAttrFamily, unix.AF_INET)
				a := ep.Addr.As4()
				n.Bytes(addrAttrAddr4, a[:])
			} else {
				n.Uint16(addrAttrFamily, unix.AF_INET6)
				a := ep.Addr.As16()
				n.Bytes(addrAttrAddr6, a[:])
			}
			if ep.IfIndex != 0 {
				n.Int32(addrAttrIfIdx, ep.IfIndex)
			}
		}
		n.Uint32(addrAttrFlags, uint32(ep.Flags))
		return nil
	})
}

// Add adds an endpoint with the given ID.
func (c *Conn) Add(ep Endpoint) error {
	_, err := c.do(cmdAddAddr, netlink.Request|netlink.Acknowledge, func(ae *netlink.AttributeEncoder) { encodeAddr(ae, ep, true) })
	if err != nil {
		return fmt.Errorf("mptcp: add endpoint %d %s (%s): %w", ep.ID, ep.Addr, ep.Flags, err)
	}
	return nil
}

// Del deletes the endpoint with the given ID; the kernel closes the
// subflows that use its address.
func (c *Conn) Del(id uint8) error {
	_, err := c.do(cmdDelAddr, netlink.Request|netlink.Acknowledge, func(ae *netlink.AttributeEncoder) { encodeAddr(ae, Endpoint{ID: id}, false) })
	if err != nil {
		return fmt.Errorf("mptcp: delete endpoint %d: %w", id, err)
	}
	return nil
}

// SetFlags changes the flags the kernel lets change in place (backup,
// fullmesh) of the endpoint with the given ID.
func (c *Conn) SetFlags(id uint8, f Flags) error {
	_, err := c.do(cmdSetFlags, netlink.Request|netlink.Acknowledge, func(ae *netlink.AttributeEncoder) { encodeAddr(ae, Endpoint{ID: id, Flags: f}, false) })
	if err != nil {
		return fmt.Errorf("mptcp: set flags of endpoint %d to %q: %w", id, f, err)
	}
	return nil
}

// Limits reads the limits.
func (c *Conn) Limits() (Limits, error) {
	msgs, err := c.do(cmdGetLimits, netlink.Request, nil)
	if err != nil {
		return Limits{}, fmt.Errorf("mptcp: get limits: %w", err)
	}
	var l Limits
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return Limits{}, err
		}
		for ad.Next() {
			switch ad.Type() {
			case attrSubflows:
				l.Subflows = ad.Uint32()
			case attrRcvAddAddrs:
				l.AddAddrAccepted = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			return Limits{}, err
		}
	}
	return l, nil
}

// SetLimits sets the limits.
func (c *Conn) SetLimits(l Limits) error {
	_, err := c.do(cmdSetLimits, netlink.Request|netlink.Acknowledge, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(attrRcvAddAddrs, l.AddAddrAccepted)
		ae.Uint32(attrSubflows, l.Subflows)
	})
	if err != nil {
		return fmt.Errorf("mptcp: set limits subflows %d add_addr_accepted %d: %w", l.Subflows, l.AddAddrAccepted, err)
	}
	return nil
}
