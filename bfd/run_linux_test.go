package bfd

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel delivers it.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func int32Bytes(v int) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }

func TestRecvTTL(t *testing.T) {
	for _, c := range []struct {
		name string
		oob  []byte
		ttl  int
		ok   bool
	}{
		{"IPv4 TTL 255", cmsg(unix.IPPROTO_IP, unix.IP_TTL, int32Bytes(255)), 255, true},
		{"IPv4 TTL 254", cmsg(unix.IPPROTO_IP, unix.IP_TTL, int32Bytes(254)), 254, true},
		{"IPv6 hop limit 255", cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32Bytes(255)), 255, true},
		{"IPv6 hop limit 1 after another message", append(cmsg(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int32Bytes(0)),
			cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32Bytes(1))...), 1, true},
		{"other message only", cmsg(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int32Bytes(255)), 0, false},
		{"none", nil, 0, false},
		{"truncated", cmsg(unix.IPPROTO_IP, unix.IP_TTL, int32Bytes(255))[:8], 0, false},
	} {
		ttl, ok := recvTTL(c.oob)
		if ttl != c.ttl || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, ttl, ok, c.ttl, c.ok)
		}
	}
}

// FuzzRecvTTL: the control-message parser never panics, and a TTL it
// reports comes from an IP_TTL or IPV6_HOPLIMIT message.
func FuzzRecvTTL(f *testing.F) {
	f.Add(cmsg(unix.IPPROTO_IP, unix.IP_TTL, int32Bytes(255)))
	f.Add(cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32Bytes(64)))
	f.Add(cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, []byte{255}))
	f.Fuzz(func(t *testing.T, oob []byte) {
		ttl, ok := recvTTL(oob)
		if !ok && ttl != 0 {
			t.Fatalf("ttl %d without ok", ttl)
		}
	})
}
