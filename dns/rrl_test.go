package dns

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

func TestRRLBuckets(t *testing.T) {
	r := newRRL(config.DNSRRL{Rate: 10, Burst: 10, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56,
		Exempt: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, true)
	now := time.Unix(1000, 0)
	count := func(a string, n int) (pass, drop, slip int) {
		for range n {
			switch r.check(netip.MustParseAddr(a), now) {
			case rrlPass:
				pass++
			case rrlDrop:
				drop++
			case rrlSlip:
				slip++
			}
		}
		return
	}
	if p, d, s := count("192.0.2.1", 20); p != 10 || d != 5 || s != 5 {
		t.Errorf("burst 10 then slip 2: pass %d drop %d slip %d", p, d, s)
	}
	// Same /24: same bucket, empty.
	if p, _, _ := count("192.0.2.200", 1); p != 0 {
		t.Error("another host of the same /24 got a fresh bucket")
	}
	// Another /24: its own bucket.
	if p, _, _ := count("198.51.100.1", 10); p != 10 {
		t.Errorf("another /24 limited: %d passed", p)
	}
	// IPv6 /56.
	if p, _, _ := count("2001:db8:0:1::1", 10); p != 10 {
		t.Errorf("IPv6 first 10: %d passed", p)
	}
	if p, _, _ := count("2001:db8:0:ff::2", 1); p != 0 {
		t.Error("same /56 not shared")
	}
	if p, _, _ := count("2001:db8:0:100::1", 1); p != 1 {
		t.Error("other /56 shared")
	}
	// Exempt.
	if p, _, _ := count("203.0.113.9", 100); p != 100 {
		t.Errorf("exempt prefix limited: %d passed", p)
	}
	// Refill at the rate: half a second gives 5 tokens.
	now = now.Add(500 * time.Millisecond)
	if p, _, _ := count("192.0.2.1", 10); p != 5 {
		t.Errorf("after 0.5 s at 10/s: %d passed, want 5", p)
	}
	// slip 0: all limited responses dropped.
	r0 := newRRL(config.DNSRRL{Rate: 1, Burst: 1, Slip: 0}, true)
	for i := range 10 {
		v := r0.check(netip.MustParseAddr("192.0.2.1"), now)
		if i > 0 && v != rrlDrop {
			t.Fatalf("slip 0: verdict %d", v)
		}
	}
}

func TestRRLTableBounded(t *testing.T) {
	r := newRRL(config.DNSRRL{Rate: 1, Burst: 1}, false)
	now := time.Unix(1000, 0)
	for i := range 64 * rrlMaxPerShard * 2 {
		r.check(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 1}), now)
		if i%100000 == 0 {
			now = now.Add(3 * time.Second) // older buckets refill and can go
		}
	}
	n := 0
	for i := range r.shards {
		n += len(r.shards[i].m)
	}
	if n > 64*rrlMaxPerShard {
		t.Errorf("%d buckets, bound %d", n, 64*rrlMaxPerShard)
	}
}

// TestRRLServer: a client over its rate gets some truncated answers
// (slip) and loses others.
func TestRRLServer(t *testing.T) {
	y := strings.Replace(baseLinks+baseDNS, "rrl: {disable: true}", "rrl: {rate: 5, burst: 5, slip: 2}", 1)
	ts := startServer(t, parseConfig(t, y), newFakeSource("isp1", "isp2"), nil)
	c, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(mdns.Msg).SetQuestion("www.example.com.", mdns.TypeA)
	p, _ := m.Pack()
	const n = 40
	for range n {
		c.Write(p)
	}
	full, tc := 0, 0
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		k, err := c.Read(buf)
		if err != nil {
			break
		}
		r := new(mdns.Msg)
		if r.Unpack(buf[:k]) != nil {
			t.Fatal("bad answer")
		}
		if r.Truncated {
			tc++
		} else {
			full++
		}
	}
	st := ts.Stats()
	t.Logf("%d queries: %d answered, %d truncated, stats dropped %d slipped %d", n, full, tc, st.RRLDropped, st.RRLSlipped)
	if full < 5 || full > 7 || tc == 0 || st.RRLDropped == 0 || int(st.RRLSlipped) != tc {
		t.Errorf("rate 5 burst 5 slip 2: %d full answers, %d truncated, %d dropped", full, tc, st.RRLDropped)
	}
}

// TestRRLFullTableEvicts: with the table full of active clients, a new
// client prefix is still limited (a stale bucket is evicted for it and
// counted) rather than let through unlimited.
func TestRRLFullTableEvicts(t *testing.T) {
	r := newRRL(config.DNSRRL{Rate: 1, Burst: 1, IPv4Prefix: 24, IPv6Prefix: 56}, true)
	r.slip = 0
	var evicted atomic.Uint64
	r.evicted = &evicted
	now := time.Unix(1000, 0)
	// Fill every shard with active /24s (each has spent its token).
	n := 0
	for i := 0; evicted.Load() == 0; i++ {
		a := netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 1})
		if i >= 1<<24 {
			t.Fatal("table never full")
		}
		r.check(a, now)
		n++
	}
	fresh := netip.MustParseAddr("203.0.113.7")
	if v := r.check(fresh, now); v != rrlPass {
		t.Errorf("a new client's first answer: %v, want it let through (burst 1)", v)
	}
	drops := 0
	for range 10 {
		if r.check(fresh, now) == rrlDrop {
			drops++
		}
	}
	if drops != 10 {
		t.Errorf("table full: %d of 10 answers over the rate dropped, want 10 (no fail-open)", drops)
	}
	t.Logf("table full after %d prefixes; %d evictions", n, evicted.Load())
}
