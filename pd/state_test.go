package pd

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// TestStateRoundTrip: a saved binding reads back the same, the file is
// 0600, and no temp file is left.
func TestStateRoundTrip(t *testing.T) {
	now := time.Now()
	srv := &dhcpv6.DUIDEN{EnterpriseNumber: 2495, EnterpriseIdentifier: []byte("kea")}
	l := Lease{Link: "isp1", Prefix: netip.MustParsePrefix("2001:db8:1:8000::/56"), Server: srv, Obtained: now,
		Preferred: now.Add(200 * time.Second), Valid: now.Add(300 * time.Second), T1: now.Add(100 * time.Second), T2: now.Add(160 * time.Second)}
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "pd-isp1.json")
	if err := SaveState(path, Saved{DUID: clientDUID, IAID: [4]byte{1, 2, 3, 4}, Lease: l, Since: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v: want 0600", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the state dir, want just the state (no temp file left)", len(ents))
	}
	s, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !s.DUID.Equal(clientDUID) || s.IAID != [4]byte{1, 2, 3, 4} || s.Lease.Prefix != l.Prefix || !s.Lease.Server.Equal(srv) || s.Lease.Link != "isp1" {
		t.Errorf("read back %+v", s)
	}
	for name, p := range map[string][2]time.Time{"obtained": {s.Lease.Obtained, now}, "preferred": {s.Lease.Preferred, l.Preferred},
		"valid": {s.Lease.Valid, l.Valid}, "since": {s.Since, now.Add(-time.Hour)}, "t1": {s.Lease.T1, l.T1}, "t2": {s.Lease.T2, l.T2}} {
		if d := p[0].Sub(p[1]); d < -time.Second || d > time.Second {
			t.Errorf("%s read back %s off", name, d)
		}
	}
}

// TestParseStateRejects: every malformed field is an error.
func TestParseStateRejects(t *testing.T) {
	good := `{"link":"isp1","duid":"00030001020000000001","iaid":"01020304","prefix":"2001:db8:1:8000::/56","server_duid":"0002000009bf6b6561","obtained":"2026-12-03T12:00:00Z","preferred_lifetime":200,"valid_lifetime":300,"t1":100,"t2":160}`
	if _, err := ParseState([]byte(good)); err != nil {
		t.Fatalf("good state refused: %v", err)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `null`,
		replace(good, `"iaid":"01020304"`, `"iaid":"0102"`),
		replace(good, `"duid":"00030001020000000001"`, `"duid":"zz"`),
		replace(good, `"duid":"00030001020000000001"`, `"duid":""`),
		replace(good, `2001:db8:1:8000::/56`, `2001:db8:1:8000::1/56`),
		replace(good, `2001:db8:1:8000::/56`, `192.0.2.0/24`),
		replace(good, `2001:db8:1:8000::/56`, `2001:db8::/96`),
		replace(good, `"valid_lifetime":300`, `"valid_lifetime":100`),
		replace(good, `"valid_lifetime":300`, `"valid_lifetime":0`),
		replace(good, `"t1":100`, `"t1":-1`),
		replace(good, `"t1":100`, `"t1":200`),
		replace(good, `"obtained":"2026-12-03T12:00:00Z",`, ``),
		replace(good, `"link"`, `"lnk"`),
	} {
		if s, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("accepted %s: %+v", bad, s)
		}
	}
}

func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("no " + old + " in " + s)
	}
	return strings.Replace(s, old, new, 1)
}

func FuzzParseState(f *testing.F) {
	now := time.Now()
	b, _ := MarshalState(Saved{DUID: clientDUID, Lease: Lease{Prefix: netip.MustParsePrefix("2001:db8:1:8000::/56"), Server: clientDUID,
		Obtained: now, Preferred: now.Add(time.Hour), Valid: now.Add(2 * time.Hour), T1: now.Add(time.Minute), T2: now.Add(2 * time.Minute)}})
	f.Add(b)
	f.Add([]byte(`{"duid":"0003000102","iaid":"00000000","prefix":"2001:db8::/48","obtained":"2026-01-01T00:00:00Z","valid_lifetime":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			return
		}
		if s.DUID == nil || !s.Lease.Prefix.IsValid() || s.Lease.Prefix.Bits() > 64 || s.Lease.Preferred.After(s.Lease.Valid) ||
			s.Lease.T1.After(s.Lease.T2) || !s.Lease.Valid.After(s.Lease.Obtained) {
			t.Fatalf("accepted an unusable binding %+v", s)
		}
		// what it accepts, it writes back the same
		out, err := MarshalState(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseState(out)
		if err != nil || s2.Lease.Prefix != s.Lease.Prefix || !s2.DUID.Equal(s.DUID) || !s2.Lease.Valid.Equal(s.Lease.Valid) {
			t.Fatalf("round trip: %+v %v", s2, err)
		}
	})
}
