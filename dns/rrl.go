package dns

import (
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multihome/multihome/config"
)

// rrl is response rate limiting: one token bucket per client prefix, so a
// spoofed flood cannot turn the server into an amplifier. Limited
// responses are dropped, except every slip-th, which is sent truncated
// and empty so a real client behind the prefix retries over TCP.
type rrl struct {
	rate, burst float64
	slip        int
	p4, p6      int
	exempt      []netip.Prefix
	shards      [64]rrlShard
	// evicted counts buckets evicted from a full table (the server's
	// counter; nil in tests that build an rrl alone).
	evicted *atomic.Uint64
}

type rrlShard struct {
	mu sync.Mutex
	m  map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds
	slips  int
}

// rrlMaxPerShard bounds the table: 64 × 4096 client prefixes.
const rrlMaxPerShard = 4096

type rrlVerdict int

const (
	rrlPass rrlVerdict = iota
	rrlDrop
	rrlSlip
)

func newRRL(c config.DNSRRL, slipSet bool) *rrl {
	if c.Disable {
		return nil
	}
	r := &rrl{
		rate:   float64(c.Rate),
		burst:  float64(c.Burst),
		slip:   c.Slip,
		p4:     c.IPv4Prefix,
		p6:     c.IPv6Prefix,
		exempt: slices.Clone(c.Exempt),
	}
	if r.rate <= 0 {
		r.rate = config.DefaultDNSRRLRate
	}
	if r.burst <= 0 {
		r.burst = 2 * r.rate
	}
	if r.slip == 0 && !slipSet {
		r.slip = config.DefaultDNSRRLSlip
	}
	if r.p4 <= 0 || r.p4 > 32 {
		r.p4 = config.DefaultDNSRRLPrefix4
	}
	if r.p6 <= 0 || r.p6 > 128 {
		r.p6 = config.DefaultDNSRRLPrefix6
	}
	for i := range r.shards {
		r.shards[i].m = map[netip.Prefix]*bucket{}
	}
	return r
}

// same reports whether o has the same settings, so a reload can keep the
// buckets.
func (r *rrl) same(o *rrl) bool {
	return r.rate == o.rate && r.burst == o.burst && r.slip == o.slip && r.p4 == o.p4 && r.p6 == o.p6 && slices.Equal(r.exempt, o.exempt)
}

// check takes a token for a response to client a.
func (r *rrl) check(a netip.Addr, now time.Time) rrlVerdict {
	for _, p := range r.exempt {
		if p.Contains(a) {
			return rrlPass
		}
	}
	bits := r.p4
	if !a.Is4() {
		bits = r.p6
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return rrlPass
	}
	b16 := p.Addr().As16()
	h := uint64(14695981039346656037)
	for _, c := range b16 {
		h ^= uint64(c)
		h *= 1099511628211
	}
	sh := &r.shards[h%uint64(len(r.shards))]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[p]
	if b == nil {
		if len(sh.m) >= rrlMaxPerShard {
			sh.sweep(t, r)
			if len(sh.m) >= rrlMaxPerShard {
				// Full of active clients: evict the stalest of a few, so
				// a flood of new prefixes cannot turn limiting off.
				sh.evict()
				if r.evicted != nil {
					r.evicted.Add(1)
				}
			}
		}
		b = &bucket{tokens: r.burst, last: t}
		sh.m[p] = b
	}
	b.tokens = min(r.burst, b.tokens+float64(t-b.last)/1e9*r.rate)
	b.last = t
	if b.tokens >= 1 {
		b.tokens--
		return rrlPass
	}
	if r.slip > 0 {
		b.slips++
		if b.slips >= r.slip {
			b.slips = 0
			return rrlSlip
		}
	}
	return rrlDrop
}

// evict drops the least recently used of up to 8 buckets (map order is
// random, so this is a sampled LRU).
func (sh *rrlShard) evict() {
	var victim netip.Prefix
	oldest, n := int64(math.MaxInt64), 0
	for p, b := range sh.m {
		if b.last < oldest {
			victim, oldest = p, b.last
		}
		if n++; n == 8 {
			break
		}
	}
	delete(sh.m, victim)
}

// sweep forgets the buckets that have refilled: they are as good as new.
func (sh *rrlShard) sweep(t int64, r *rrl) {
	full := int64(r.burst / r.rate * 1e9)
	for p, b := range sh.m {
		if t-b.last >= full {
			delete(sh.m, p)
		}
	}
}
