package bond

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestHeaderRoundTrip(t *testing.T) {
	for _, dst := range []string{"203.0.113.80:443", "[2001:db8:ffff::80]:8080"} {
		h, err := NewHeader(netip.MustParseAddrPort(dst))
		if err != nil {
			t.Fatal(err)
		}
		b := h.Marshal(testKey)
		r := bytes.NewReader(append(b, "payload"...))
		got, err := ParseHeader(r, testKey)
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		if got.Dst != h.Dst || got.Nonce != h.Nonce || got.Time.Unix() != h.Time.Unix() {
			t.Errorf("%s: got %+v, want %+v", dst, got, h)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "payload" {
			t.Errorf("%s: read past the header: rest %q", dst, rest)
		}
		if _, err := ParseHeader(bytes.NewReader(b), []byte("another key, 32 bytes long......")); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%s: wrong key: %v", dst, err)
		}
		for i := range b {
			c := bytes.Clone(b)
			c[i] ^= 0x40
			if _, err := ParseHeader(bytes.NewReader(c), testKey); err == nil {
				t.Errorf("%s: byte %d flipped, still accepted", dst, i)
			}
		}
	}
}

func TestReplay(t *testing.T) {
	var r Replay
	now := time.Now()
	h, _ := NewHeader(netip.MustParseAddrPort("203.0.113.80:443"))
	if err := r.Check(h, now); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(h, now.Add(time.Second)); !errors.Is(err, ErrReplay) {
		t.Errorf("second use: %v", err)
	}
	old, _ := NewHeader(netip.MustParseAddrPort("203.0.113.80:443"))
	old.Time = now.Add(-time.Minute)
	if err := r.Check(old, now); !errors.Is(err, ErrStale) {
		t.Errorf("old header: %v", err)
	}
	// Long after the window the nonce may be forgotten: the header is
	// stale anyway.
	if err := r.Check(h, now.Add(2*time.Minute)); !errors.Is(err, ErrStale) {
		t.Errorf("replayed after the window: %v", err)
	}
}

// FuzzParseHeader: no input panics, reads past the header or is
// accepted without the right MAC.
func FuzzParseHeader(f *testing.F) {
	h, _ := NewHeader(netip.MustParseAddrPort("203.0.113.80:443"))
	f.Add(h.Marshal(testKey))
	h6, _ := NewHeader(netip.MustParseAddrPort("[2001:db8::1]:80"))
	f.Add(h6.Marshal(testKey))
	f.Add([]byte("MHB1"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		got, err := ParseHeader(r, testKey)
		if read := len(b) - r.Len(); read > MaxHeaderLen {
			t.Fatalf("read %d bytes", read)
		}
		if err == nil && !bytes.HasPrefix(b, got.Marshal(testKey)) {
			t.Fatalf("accepted %x: re-marshalled differs", b)
		}
	})
}

func TestParseSockaddr(t *testing.T) {
	v4 := []byte{2, 0, 0x1f, 0x90, 203, 0, 113, 7, 0, 0, 0, 0, 0, 0, 0, 0} // AF_INET, port 8080
	if got, err := parseSockaddr(v4); err != nil || got != netip.MustParseAddrPort("203.0.113.7:8080") {
		t.Errorf("sockaddr_in: %v %v", got, err)
	}
	v6 := make([]byte, 28)
	v6[0] = 10 // AF_INET6
	v6[2], v6[3] = 0x01, 0xbb
	copy(v6[8:], netip.MustParseAddr("2001:db8::7").AsSlice())
	if got, err := parseSockaddr(v6); err != nil || got != netip.MustParseAddrPort("[2001:db8::7]:443") {
		t.Errorf("sockaddr_in6: %v %v", got, err)
	}
	for _, b := range [][]byte{v4[:4], v6[:20], {99, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := parseSockaddr(b); err == nil {
			t.Errorf("%x accepted", b)
		}
	}
}
