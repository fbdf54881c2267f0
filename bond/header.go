package bond

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"
)

// Wire format of the header a gateway sends first on each connection to
// the aggregator (all integers big-endian):
//
//	magic   4   "MHB1"
//	nonce  16   random
//	time    8   Unix seconds when sent
//	family  1   4 or 6
//	addr    4|16 destination address
//	port    2   destination port
//	mac    32   HMAC-SHA256(key, every byte above)
//
// The aggregator answers one byte once it has tried the destination:
// StatusOK, or StatusUnreachable and closes.
const (
	magic          = "MHB1"
	fixedLen       = 4 + 16 + 8 + 1
	macLen         = sha256.Size
	MaxHeaderLen   = fixedLen + 16 + 2 + macLen
	MinKeyLen      = 16
	StatusOK       = 0
	StatusFailed   = 1
	DefaultWindow  = 30 * time.Second
	maxReplayCache = 1 << 20
)

// Header is what a connection to the aggregator starts with.
type Header struct {
	Nonce [16]byte
	Time  time.Time
	Dst   netip.AddrPort
}

// Errors of ReadHeader. Every one of them makes the aggregator close the
// connection without answering.
var (
	ErrBadMagic  = errors.New("bond: not a bond header")
	ErrBadMAC    = errors.New("bond: bad MAC (wrong key?)")
	ErrStale     = errors.New("bond: timestamp outside the replay window")
	ErrReplay    = errors.New("bond: nonce seen before (replay)")
	ErrBadFamily = errors.New("bond: bad address family")
	ErrBadDst    = errors.New("bond: unusable destination")
)

// NewHeader returns a header for dst with a fresh nonce and the current
// time.
func NewHeader(dst netip.AddrPort) (Header, error) {
	h := Header{Time: time.Now(), Dst: netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return h, err
	}
	return h, nil
}

// Marshal returns the header's bytes, MAC included.
func (h Header) Marshal(key []byte) []byte {
	b := make([]byte, 0, MaxHeaderLen)
	b = append(b, magic...)
	b = append(b, h.Nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time.Unix()))
	a := h.Dst.Addr().Unmap()
	if a.Is4() {
		b = append(b, 4)
	} else {
		b = append(b, 6)
	}
	b = append(b, a.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, h.Dst.Port())
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b)
}

// ParseHeader reads one header from r and checks its MAC with key. It
// reads no byte past the header. It does not check the time or nonce:
// [Replay] does.
func ParseHeader(r io.Reader, key []byte) (Header, error) {
	var buf [MaxHeaderLen]byte
	if _, err := io.ReadFull(r, buf[:fixedLen]); err != nil {
		return Header{}, err
	}
	if !bytes.Equal(buf[:4], []byte(magic)) {
		return Header{}, ErrBadMagic
	}
	alen := 0
	switch buf[fixedLen-1] {
	case 4:
		alen = 4
	case 6:
		alen = 16
	default:
		return Header{}, ErrBadFamily
	}
	n := fixedLen + alen + 2
	if _, err := io.ReadFull(r, buf[fixedLen:n+macLen]); err != nil {
		return Header{}, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(buf[:n])
	if !hmac.Equal(m.Sum(nil), buf[n:n+macLen]) {
		return Header{}, ErrBadMAC
	}
	var h Header
	copy(h.Nonce[:], buf[4:20])
	h.Time = time.Unix(int64(binary.BigEndian.Uint64(buf[20:28])), 0)
	a, _ := netip.AddrFromSlice(buf[fixedLen : fixedLen+alen])
	h.Dst = netip.AddrPortFrom(a, binary.BigEndian.Uint16(buf[fixedLen+alen:]))
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Is4In6() || h.Dst.Port() == 0 {
		return h, fmt.Errorf("%w: %s", ErrBadDst, h.Dst)
	}
	return h, nil
}

// Replay remembers the nonces of the headers accepted within the window,
// and refuses a header whose time is outside now ± window or whose nonce
// it has seen. It is safe for concurrent use.
type Replay struct {
	Window time.Duration
	mu     sync.Mutex
	seen   map[[16]byte]time.Time // nonce → when it may be forgotten
	swept  time.Time
}

// Check accepts h once.
func (r *Replay) Check(h Header, now time.Time) error {
	w := r.Window
	if w <= 0 {
		w = DefaultWindow
	}
	if d := now.Sub(h.Time); d > w || d < -w {
		return ErrStale
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[[16]byte]time.Time{}
	}
	if now.Sub(r.swept) > w || len(r.seen) >= maxReplayCache {
		for n, until := range r.seen {
			if now.After(until) {
				delete(r.seen, n)
			}
		}
		r.swept = now
	}
	if _, ok := r.seen[h.Nonce]; ok {
		return ErrReplay
	}
	if len(r.seen) >= maxReplayCache {
		return fmt.Errorf("%w: replay cache full", ErrReplay)
	}
	// A header is acceptable until its time + window: keep its nonce
	// until then (and a second more for clock rounding).
	r.seen[h.Nonce] = h.Time.Add(w + time.Second)
	return nil
}
