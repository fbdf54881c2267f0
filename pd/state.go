package pd

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Saved is a binding kept across restarts: who asked (DUID, IAID), what
// was delegated, by whom, and when.
type Saved struct {
	DUID dhcpv6.DUID
	IAID [4]byte
	// Lease is the binding; its Obtained is when the Reply that granted
	// its lifetimes came.
	Lease Lease
	// Since is when the prefix was first obtained (renewals keep it);
	// zero: Lease.Obtained.
	Since time.Time
}

// stateFile is the JSON form of Saved: lifetimes in seconds from
// obtained, identities in hex.
type stateFile struct {
	Link      string    `json:"link"`
	DUID      string    `json:"duid"`
	IAID      string    `json:"iaid"`
	Prefix    string    `json:"prefix"`
	Server    string    `json:"server_duid,omitempty"`
	Obtained  time.Time `json:"obtained"`
	Preferred int64     `json:"preferred_lifetime"`
	Valid     int64     `json:"valid_lifetime"`
	T1        int64     `json:"t1"`
	T2        int64     `json:"t2"`
	Since     time.Time `json:"bound_since,omitzero"`
}

// maxLifetime bounds saved lifetimes (an infinite RFC 8415 lifetime is
// held as 100 years, see at).
const maxLifetime = 101 * 365 * 24 * 3600

// MarshalState encodes s for a state file.
func MarshalState(s Saved) ([]byte, error) {
	if s.DUID == nil || !s.Lease.Prefix.IsValid() {
		return nil, errors.New("nothing to save: no DUID or no prefix")
	}
	secs := func(t time.Time) int64 { return int64(t.Sub(s.Lease.Obtained).Round(time.Second) / time.Second) }
	f := stateFile{Link: s.Lease.Link, DUID: hex.EncodeToString(s.DUID.ToBytes()), IAID: hex.EncodeToString(s.IAID[:]),
		Prefix: s.Lease.Prefix.String(), Obtained: s.Lease.Obtained.UTC().Round(0),
		Preferred: secs(s.Lease.Preferred), Valid: secs(s.Lease.Valid), T1: secs(s.Lease.T1), T2: secs(s.Lease.T2),
		Since: s.Since.UTC().Round(0)}
	if s.Lease.Server != nil {
		f.Server = hex.EncodeToString(s.Lease.Server.ToBytes())
	}
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// ParseState decodes a state file, checking every field: a file that
// does not describe a usable binding is an error, never a partial one.
func ParseState(b []byte) (Saved, error) {
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Saved{}, fmt.Errorf("not a lease state: %w", err)
	}
	var s Saved
	duid, err := parseDUID(f.DUID)
	if err != nil {
		return Saved{}, fmt.Errorf("duid: %w", err)
	}
	s.DUID = duid
	iaid, err := hex.DecodeString(f.IAID)
	if err != nil || len(iaid) != 4 {
		return Saved{}, fmt.Errorf("iaid %q: want 4 bytes in hex", f.IAID)
	}
	copy(s.IAID[:], iaid)
	p, err := netip.ParsePrefix(f.Prefix)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() == 0 || p.Bits() > 64 || p != p.Masked() {
		return Saved{}, fmt.Errorf("prefix %q: want an IPv6 prefix of length 1 to 64 without host bits", f.Prefix)
	}
	if f.Server != "" {
		if s.Lease.Server, err = parseDUID(f.Server); err != nil {
			return Saved{}, fmt.Errorf("server_duid: %w", err)
		}
	}
	if f.Obtained.IsZero() {
		return Saved{}, errors.New("obtained: missing")
	}
	for _, v := range []int64{f.Preferred, f.Valid, f.T1, f.T2} {
		if v < 0 || v > maxLifetime {
			return Saved{}, fmt.Errorf("lifetime %d s out of range", v)
		}
	}
	if f.Preferred > f.Valid || f.T1 > f.T2 || f.Valid == 0 {
		return Saved{}, fmt.Errorf("lifetimes preferred %d valid %d t1 %d t2 %d: want 0 < valid, preferred ≤ valid, t1 ≤ t2", f.Preferred, f.Valid, f.T1, f.T2)
	}
	s.Lease.Obtained = f.Obtained
	s.Since = f.Since
	if s.Since.IsZero() || s.Since.After(f.Obtained) {
		s.Since = f.Obtained
	}
	d := func(v int64) time.Time { return f.Obtained.Add(time.Duration(v) * time.Second) }
	s.Lease.Link, s.Lease.Prefix = f.Link, p
	s.Lease.Preferred, s.Lease.Valid, s.Lease.T1, s.Lease.T2 = d(f.Preferred), d(f.Valid), d(f.T1), d(f.T2)
	return s, nil
}

func parseDUID(h string) (dhcpv6.DUID, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) < 2 || len(b) > 130 {
		return nil, fmt.Errorf("%q: want a DUID of 2 to 130 bytes in hex", h)
	}
	d, err := dhcpv6.DUIDFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", h, err)
	}
	return d, nil
}

// SaveState writes s to path atomically (a temp file in the same
// directory, synced, renamed), mode 0600; the directory is made 0700 if
// missing.
func SaveState(path string, s Saved) error {
	b, err := MarshalState(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lease state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("lease state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lease state %s: %w", path, err)
	}
	return nil
}

// LoadState reads a state file written by SaveState.
func LoadState(path string) (Saved, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Saved{}, err
	}
	s, err := ParseState(b)
	if err != nil {
		return Saved{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
