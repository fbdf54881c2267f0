package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PrefixFilter is one entry of a prefix list, written as FRR and Cisco
// write them: "203.0.113.0/24" matches exactly that route;
// "203.0.113.0/24 le 28" also its more specifics up to /28;
// "203.0.113.0/24 ge 25 le 28" only lengths 25 to 28 inside it;
// "203.0.113.0/24 ge 25" lengths 25 to 32 (128 for IPv6); and
// "203.0.113.0/24 orlonger" (Junos' word) the prefix and every more
// specific one.
type PrefixFilter struct {
	Prefix netip.Prefix
	// GE and LE bound the matched lengths (both Prefix.Bits() for an
	// exact match).
	GE, LE int
}

// Matches reports whether route p is taken by the filter: inside Prefix,
// with a length in GE..LE.
func (f PrefixFilter) Matches(p netip.Prefix) bool {
	return p.Addr().Is4() == f.Prefix.Addr().Is4() && p.Bits() >= f.GE && p.Bits() <= f.LE &&
		f.Prefix.Bits() <= p.Bits() && f.Prefix.Contains(p.Addr())
}

// Exact reports whether the filter matches one prefix only.
func (f PrefixFilter) Exact() bool { return f.GE == f.Prefix.Bits() && f.LE == f.Prefix.Bits() }

// String writes the filter back in the syntax it is read in.
func (f PrefixFilter) String() string {
	max := 32
	if !f.Prefix.Addr().Is4() {
		max = 128
	}
	b := f.Prefix.Bits()
	switch {
	case f.Exact():
		return f.Prefix.String()
	case f.GE == b && f.LE == max:
		return f.Prefix.String() + " orlonger"
	case f.GE == b:
		return fmt.Sprintf("%s le %d", f.Prefix, f.LE)
	case f.LE == max:
		return fmt.Sprintf("%s ge %d", f.Prefix, f.GE)
	}
	return fmt.Sprintf("%s ge %d le %d", f.Prefix, f.GE, f.LE)
}

// MarshalText writes String.
func (f PrefixFilter) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

const prefixFilterSyntax = `want PREFIX, "PREFIX le N", "PREFIX ge N", "PREFIX ge N le M" or "PREFIX orlonger", like 203.0.113.0/24 le 28`

// UnmarshalText parses a prefix-list entry (PrefixFilter). Host bits are
// refused, as FRR does.
func (f *PrefixFilter) UnmarshalText(b []byte) error {
	s := string(b)
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return fmt.Errorf("empty prefix: %s", prefixFilterSyntax)
	}
	p, err := ParsePrefix(fields[0])
	if err != nil {
		return err
	}
	if p != p.Masked() {
		return fmt.Errorf("%s has host bits set: did you mean %s?", p, p.Masked())
	}
	maxLen := 32
	if !p.Addr().Is4() {
		maxLen = 128
	}
	out := PrefixFilter{Prefix: p, GE: p.Bits(), LE: p.Bits()}
	var ge, le int
	rest := fields[1:]
	for len(rest) > 0 {
		switch kw := strings.ToLower(rest[0]); kw {
		case "orlonger":
			if ge != 0 || le != 0 || len(rest) > 1 {
				return fmt.Errorf("%q: orlonger stands alone after the prefix (%s)", s, prefixFilterSyntax)
			}
			out.LE = maxLen
			rest = rest[1:]
		case "ge", "le":
			if len(rest) < 2 {
				return fmt.Errorf("%q: %s needs a length (%s)", s, kw, prefixFilterSyntax)
			}
			n, err := strconv.Atoi(rest[1])
			if err != nil || n < 0 || n > maxLen {
				return fmt.Errorf("%q: %s %s: want a length 0..%d", s, kw, rest[1], maxLen)
			}
			if kw == "ge" {
				if ge != 0 || le != 0 {
					return fmt.Errorf("%q: ge comes once, before le (%s)", s, prefixFilterSyntax)
				}
				if n <= p.Bits() {
					return fmt.Errorf("%q: ge %d must be longer than the prefix's /%d (leave ge out to start at /%d)", s, n, p.Bits(), p.Bits())
				}
				ge = n
			} else {
				if le != 0 {
					return fmt.Errorf("%q: le comes once (%s)", s, prefixFilterSyntax)
				}
				if n < max(p.Bits(), ge) {
					return fmt.Errorf("%q: le %d is shorter than /%d: it would match nothing", s, n, max(p.Bits(), ge))
				}
				le = n
			}
			rest = rest[2:]
		default:
			return fmt.Errorf("%q: unknown word %q (%s)", s, rest[0], prefixFilterSyntax)
		}
	}
	if ge != 0 {
		out.GE, out.LE = ge, maxLen
	}
	if le != 0 {
		out.LE = le
	}
	*f = out
	return nil
}

// ParsePrefix parses an address prefix with an error that says what is
// wrong in words (netip's errors name Go functions).
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad prefix %q: %s; want an address and a length, like 192.0.2.0/24 or 2001:db8::/48", s, netipCause(err))
	}
	return p, nil
}

// netipCause is the last part of a net/netip parse error, without the
// Go function names ("IPv4 field has value >255").
func netipCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}
