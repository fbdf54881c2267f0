package outbound

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/route"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// tracker counts, deletes and rewrites conntrack entries by mark, in one
// network namespace (nsFD, or the process's own when 0). Nothing it does
// holds the table, or one link's part of it, in memory: counts stream
// through a fixed buffer, a link's flush is one kernel-side filtered
// delete, and migration streams the link's entries and deletes the
// matching ones in batches.
type tracker struct {
	nsFD int
}

func (t tracker) dial() (*ctnl, error) { return dialCT(t.nsFD) }

// entries returns how many entries the namespace's table holds now (the
// kernel's own count: one small request).
func (t tracker) entries() (int, error) {
	c, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.entries()
}

// flush deletes every entry whose mark, masked, equals mark, in the
// kernel (ti-mo/conntrack's FlushFilter: one request with CTA_MARK and
// CTA_MARK_MASK, O(1) memory here). The count returned is how much
// the table shrank meanwhile: exact on a quiet table, approximate when
// other flows start or expire during the flush.
func (t tracker) flush(mark, mask uint32) (int, error) {
	c, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	before, err := c.entries()
	if err != nil {
		return 0, err
	}
	ct, err := conntrack.Dial(&netlink.Config{NetNS: t.nsFD})
	if err != nil {
		return 0, fmt.Errorf("conntrack: %w", err)
	}
	defer ct.Close()
	if err := ct.FlushFilter(conntrack.NewFilter().Mark(mark).MarkMask(mask)); err != nil {
		return 0, fmt.Errorf("conntrack flush mark %#x/%#x: %w", mark, mask, err)
	}
	after, err := c.entries()
	if err != nil {
		return 0, err
	}
	return max(0, before-after), nil
}

// count streams the table once and counts the entries by mark: counts[i]
// gets the entries of link i (by scheme.LinkOf), the last element all
// entries. counts is reused: it is zeroed first.
func (t tracker) count(linkOf func(uint32) int, counts []int) error {
	c, err := t.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	clear(counts)
	links := len(counts) - 1
	return c.countMarks(func(m uint32) {
		counts[links]++
		if i := linkOf(m); i >= 0 && i < links {
			counts[i]++
		}
	})
}

// deleteMatching deletes the entries with mark/mask whose original tuple
// matches rule r (addresses, protocol, ports; iif and DSCP are not in
// conntrack and are ignored): the kernel sends only the mark's entries,
// they are matched as they stream by and deleted in batches of a few
// hundred per write on a second socket.
func (t tracker) deleteMatching(mark, mask uint32, r config.OutboundRule) (int, error) {
	dump, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer dump.Close()
	del, err := t.dial()
	if err != nil {
		return 0, err
	}
	defer del.Close()
	b := newBatch(del)
	var errs []error
	err = dump.dump(true, mark, mask, func(e ctEntry) {
		tu, ok := parseTuple(e.attr(ctaTupleOrig))
		if !ok || !flowMatches(tu, r) {
			return
		}
		if err := b.deleteEntry(e); err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	})
	if err := b.send(); err != nil {
		errs = append(errs, err)
	}
	errs = append([]error{err}, errs...)
	for e, n := range b.failed {
		if e != unix.ENOENT { // gone meanwhile: not an error
			errs = append(errs, fmt.Errorf("%d deletes: %w", n, e))
		}
	}
	return b.ok, errors.Join(errs...)
}

// tuple is the part of a conntrack tuple rules match on.
type tuple struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
}

// parseTuple reads a raw CTA_TUPLE_* attribute (header included).
func parseTuple(raw []byte) (tuple, bool) {
	var tu tuple
	if len(raw) < 4 {
		return tu, false
	}
	for it := (attrIter{b: raw[4:]}); it.next(); {
		switch it.typ {
		case ctaTupleIP:
			for ip := (attrIter{b: it.data}); ip.next(); {
				d := ip.data
				switch {
				case ip.typ == ctaIPv4Src && len(d) == 4:
					tu.src = netip.AddrFrom4([4]byte(d))
				case ip.typ == ctaIPv4Dst && len(d) == 4:
					tu.dst = netip.AddrFrom4([4]byte(d))
				case ip.typ == ctaIPv6Src && len(d) == 16:
					tu.src = netip.AddrFrom16([16]byte(d))
				case ip.typ == ctaIPv6Dst && len(d) == 16:
					tu.dst = netip.AddrFrom16([16]byte(d))
				}
			}
		case ctaTupleProto:
			for p := (attrIter{b: it.data}); p.next(); {
				d := p.data
				switch {
				case p.typ == ctaProtoNum && len(d) >= 1:
					tu.proto = d[0]
				case p.typ == ctaProtoSport && len(d) >= 2:
					tu.sport = binary.BigEndian.Uint16(d)
				case p.typ == ctaProtoDport && len(d) >= 2:
					tu.dport = binary.BigEndian.Uint16(d)
				}
			}
		}
	}
	return tu, tu.src.IsValid() && tu.dst.IsValid()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

func inPorts(p uint16, ps config.Ports) bool {
	if len(ps) == 0 {
		return true
	}
	for _, r := range ps {
		if p >= r.From && p <= r.To {
			return true
		}
	}
	return false
}

var protoNums = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

func flowMatches(t tuple, r config.OutboundRule) bool {
	if !inPrefixes(t.src, r.Src) || !inPrefixes(t.dst, r.Dst) {
		return false
	}
	if r.Proto != "" && t.proto != protoNums[r.Proto] {
		return false
	}
	if len(r.SPort)+len(r.DPort) > 0 {
		if t.proto != 6 && t.proto != 17 {
			return false
		}
		return inPorts(t.sport, r.SPort) && inPorts(t.dport, r.DPort)
	}
	return true
}

// ctQueue bounds the conntrack jobs waiting for the worker: one flush per
// link at most, plus migrations.
const ctQueue = 512

// ctJob is one conntrack operation for ctWorker.
type ctJob struct {
	link string
	flag *atomic.Bool // a flush's cancel flag
	run  func() error
}

// ctResult is a flush that failed, back to the event loop.
type ctResult struct {
	link string
	flag *atomic.Bool
	err  error
}

// ctWorker runs conntrack jobs one after the other until ctx is done, so
// that a flush of a big table never holds up the next link event.
func (c *Controller) ctWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-c.ctJobs:
			err := j.run()
			if j.link == "" {
				continue
			}
			select {
			case c.ctDone <- ctResult{link: j.link, flag: j.flag, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// queueFlush hands the flush of a down link's flows to the worker; the
// ruleset that moves its new flows is already applied. Run's goroutine.
func (c *Controller) queueFlush(name string, others []string, reason string) {
	if c.flushing[name] != nil && !c.flushing[name].Load() {
		delete(c.pending, name) // one is queued already
		return
	}
	i := c.linkIndex(name)
	mark, mask := route.SchemeOf(c.o).Mark(i), c.o.MarkMask
	cancelled := new(atomic.Bool)
	queued := time.Now()
	job := ctJob{link: name, flag: cancelled, run: func() error {
		if cancelled.Load() {
			c.log.Info("not flushing flows: the link is back", "link", name)
			return nil
		}
		start := time.Now()
		n, err := c.ct.flush(mark, mask)
		if err != nil {
			c.log.Error("conntrack flush failed", "link", name, "err", err)
			return err
		}
		c.metrics.flushed.WithLabelValues(name).Add(float64(n))
		c.log.Info("flushed flows of down link", "link", name, "flows", n, "took", time.Since(start), "queued", start.Sub(queued), "healthy", others, "reason", reason)
		c.recount()
		return nil
	}}
	select {
	case c.ctJobs <- job:
		delete(c.pending, name)
		c.flushing[name] = cancelled
	default:
		c.log.Warn("conntrack work queue full: flush deferred", "link", name)
		bound.Dropped("outbound.conntrack", 1, "flush of link "+name+" deferred (still pending)")
	}
}

// queueMigrate hands a migrate_on_recovery deletion to the worker.
func (c *Controller) queueMigrate(r config.OutboundRule, policy, from, to string, mark, mask uint32) {
	job := ctJob{run: func() error {
		start := time.Now()
		n, err := c.ct.deleteMatching(mark, mask, r)
		if err != nil {
			c.log.Error("migrate flows failed", "rule", r.Name, "from", from, "err", err)
		}
		c.metrics.migrated.WithLabelValues(r.Name, from).Add(float64(n))
		if n > 0 || err == nil {
			c.log.Info("migrated flows back", "rule", r.Name, "policy", policy, "from", from, "to", to, "flows", n, "took", time.Since(start))
		}
		c.recount()
		return nil
	}}
	select {
	case c.ctJobs <- job:
	default:
		c.log.Warn("conntrack work queue full: migration dropped", "rule", r.Name, "from", from)
		bound.Dropped("outbound.conntrack", 1, "migration of rule "+r.Name+" dropped")
	}
}

// onFlushed takes back a finished job: a failed flush is pending again
// while its link is still down. Run's goroutine.
func (c *Controller) onFlushed(r ctResult) {
	if c.flushing[r.link] == r.flag {
		delete(c.flushing, r.link)
	}
	if r.err != nil && c.status[r.link].State == monitor.Down && *c.o.FlushOnFailure {
		c.pending[r.link] = true
	}
}
