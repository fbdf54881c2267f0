package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// State is a BFD session state (RFC 5880 section 4.1).
type State uint8

// Session states.
const (
	AdminDown State = iota
	Down
	Init
	Up
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "admindown"
	case Down:
		return "down"
	case Init:
		return "init"
	case Up:
		return "up"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Diag is the diagnostic code: why the session last left Up.
type Diag uint8

// Diagnostic codes.
const (
	DiagNone Diag = iota
	DiagDetectExpired
	DiagEchoFailed
	DiagNeighborDown
	DiagForwardingReset
	DiagPathDown
	DiagConcatPathDown
	DiagAdminDown
	DiagRevConcatPathDown
)

func (d Diag) String() string {
	names := []string{"none", "control detection time expired", "echo function failed", "neighbor signaled session down",
		"forwarding plane reset", "path down", "concatenated path down", "administratively down", "reverse concatenated path down"}
	if int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("diag(%d)", uint8(d))
}

// Packet is a BFD control packet. Intervals are in microseconds as on
// the wire.
type Packet struct {
	Version    uint8
	Diag       Diag
	State      State
	Poll       bool
	Final      bool
	CPI        bool // control plane independent
	Auth       bool
	Demand     bool
	Multipoint bool
	DetectMult uint8
	MyDisc     uint32
	YourDisc   uint32
	// DesiredMinTx, RequiredMinRx, RequiredMinEchoRx in µs.
	DesiredMinTx      uint32
	RequiredMinRx     uint32
	RequiredMinEchoRx uint32
}

// HeaderLen is the length of a control packet without authentication.
const HeaderLen = 24

// Append appends the packet's wire form (no authentication section).
func (p *Packet) Append(b []byte) []byte {
	flags := byte(p.State) << 6
	for i, f := range []bool{p.Poll, p.Final, p.CPI, p.Auth, p.Demand, p.Multipoint} {
		if f {
			flags |= 1 << (5 - i)
		}
	}
	v := p.Version
	if v == 0 {
		v = 1
	}
	b = append(b, v<<5|byte(p.Diag)&0x1f, flags, p.DetectMult, HeaderLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDisc)
	b = binary.BigEndian.AppendUint32(b, p.YourDisc)
	b = binary.BigEndian.AppendUint32(b, p.DesiredMinTx)
	b = binary.BigEndian.AppendUint32(b, p.RequiredMinRx)
	return binary.BigEndian.AppendUint32(b, p.RequiredMinEchoRx)
}

// Errors returned by Parse.
var (
	ErrShort   = errors.New("bfd: packet too short")
	ErrInvalid = errors.New("bfd: invalid packet")
)

// Parse decodes a control packet and applies the checks of RFC 5880
// section 6.8.6 that need no session: version 1, a length that fits,
// detect multiplier and my discriminator non-zero, no multipoint, your
// discriminator zero only in Down or AdminDown. Authenticated packets are
// refused (multihome does not configure authentication).
func Parse(b []byte) (Packet, error) {
	if len(b) < HeaderLen {
		return Packet{}, ErrShort
	}
	p := Packet{
		Version:           b[0] >> 5,
		Diag:              Diag(b[0] & 0x1f),
		State:             State(b[1] >> 6),
		Poll:              b[1]&0x20 != 0,
		Final:             b[1]&0x10 != 0,
		CPI:               b[1]&0x08 != 0,
		Auth:              b[1]&0x04 != 0,
		Demand:            b[1]&0x02 != 0,
		Multipoint:        b[1]&0x01 != 0,
		DetectMult:        b[2],
		MyDisc:            binary.BigEndian.Uint32(b[4:]),
		YourDisc:          binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:      binary.BigEndian.Uint32(b[12:]),
		RequiredMinRx:     binary.BigEndian.Uint32(b[16:]),
		RequiredMinEchoRx: binary.BigEndian.Uint32(b[20:]),
	}
	n := int(b[3])
	switch {
	case p.Version != 1:
		return p, fmt.Errorf("%w: version %d", ErrInvalid, p.Version)
	case p.Auth:
		return p, fmt.Errorf("%w: authentication not supported", ErrInvalid)
	case n < HeaderLen || n > len(b):
		return p, fmt.Errorf("%w: length %d of %d bytes", ErrInvalid, n, len(b))
	case p.DetectMult == 0:
		return p, fmt.Errorf("%w: detect multiplier 0", ErrInvalid)
	case p.Multipoint:
		return p, fmt.Errorf("%w: multipoint bit set", ErrInvalid)
	case p.MyDisc == 0:
		return p, fmt.Errorf("%w: my discriminator 0", ErrInvalid)
	case p.YourDisc == 0 && p.State != Down && p.State != AdminDown:
		return p, fmt.Errorf("%w: your discriminator 0 in state %s", ErrInvalid, p.State)
	case p.Poll && p.Final:
		return p, fmt.Errorf("%w: poll and final both set", ErrInvalid)
	}
	return p, nil
}
