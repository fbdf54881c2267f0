package outbound

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ctnl is a raw ctnetlink socket for the operations whose cost must not
// grow with the conntrack table in memory: counting entries by mark and
// deleting them in batches. A dump is read through one fixed buffer and
// each entry is looked at in place and forgotten, so a pass over 250K
// entries allocates nothing per entry (ti-mo/conntrack's Dump builds a
// []Flow of the whole table: ~2.5 KB per entry).
type ctnl struct {
	fd  int
	buf []byte // receive buffer, reused
	seq uint32
}

// ctnetlink constants (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	nfnlSubsysCT          = 1
	ctMsgNew              = 0
	ctMsgGet              = 1
	ctMsgDelete           = 2
	ctMsgGetStats         = 5
	ctaStatsGlobalEntries = 1
	ctaTupleOrig          = 1
	ctaTupleReply         = 2
	ctaTimeout            = 7
	ctaMark               = 8
	ctaID                 = 12
	ctaZone               = 18
	ctaMarkMask           = 21
	ctaTupleIP            = 1
	ctaTupleProto         = 2
	ctaIPv4Src            = 1
	ctaIPv4Dst            = 2
	ctaIPv6Src            = 3
	ctaIPv6Dst            = 4
	ctaProtoNum           = 1
	ctaProtoSport         = 2
	ctaProtoDport         = 3
	nlaTypeMask           = 0x3fff
	nlaFNested            = 0x8000
	nlmsgHdrLen           = 16
	nfgenHdrLen           = 4
	ctnlBufSize           = 64 << 10
	ctnlBatchLimit        = 16 << 10 // bytes of requests sent in one write
)

// dialCT opens a ctnetlink socket in the namespace nsFD refers to (the
// process's own when 0). The socket stays in that namespace.
func dialCT(nsFD int) (*ctnl, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return -1, err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return -1, err
		}
		// Acks of a batch (one per request, without the request
		// copied back) must all fit in the receive buffer.
		_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		}
		return fd, nil
	}
	var fd int
	var err error
	if nsFD == 0 {
		fd, err = open()
	} else {
		fd, err = inNetns(nsFD, open)
	}
	if err != nil {
		return nil, fmt.Errorf("conntrack socket: %w", err)
	}
	return &ctnl{fd: fd, buf: make([]byte, ctnlBufSize)}, nil
}

// inNetns runs open on a locked OS thread switched into nsFD's namespace,
// and switches the thread back (a thread that cannot switch back is
// left locked, so it dies with its goroutine).
func inNetns(nsFD int, open func() (int, error)) (int, error) {
	type res struct {
		fd  int
		err error
	}
	done := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- res{-1, err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- res{-1, fmt.Errorf("enter namespace: %w", err)}
			return
		}
		fd, err := open()
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			done <- res{fd, err}
			return
		}
		runtime.UnlockOSThread()
		done <- res{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

func (c *ctnl) Close() error { return unix.Close(c.fd) }

// header appends a netlink + nfgenmsg header for a ctnetlink message of
// type msg; the length is patched by finish.
func (c *ctnl) header(b []byte, msg uint16, flags uint16, family uint8) []byte {
	c.seq++
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, nfnlSubsysCT<<8|msg)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, c.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	return append(b, family, 0, 0, 0) // nfgenmsg: family, version 0, res_id 0
}

// finish sets the length of the message that starts at start.
func finish(b []byte, start int) []byte {
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func appendU32BE(b []byte, typ uint16, v uint32) []byte {
	var d [4]byte
	binary.BigEndian.PutUint32(d[:], v)
	return appendAttr(b, typ, d[:])
}

// attrIter walks netlink attributes in place, without allocating:
//
//	for it := (attrIter{b: msg}); it.next(); { it.typ, it.data }
type attrIter struct {
	b    []byte
	typ  uint16 // flags cleared
	data []byte // payload
	raw  []byte // header and payload
}

func (it *attrIter) next() bool {
	if len(it.b) < 4 {
		return false
	}
	l := int(binary.NativeEndian.Uint16(it.b))
	if l < 4 || l > len(it.b) {
		return false
	}
	it.typ = binary.NativeEndian.Uint16(it.b[2:]) & nlaTypeMask
	it.data, it.raw = it.b[4:l], it.b[:l]
	it.b = it.b[min(len(it.b), (l+3)&^3):]
	return true
}

// ctEntry is one conntrack entry of a dump, valid only during the
// callback: msg is the raw attributes in the receive buffer.
type ctEntry struct {
	family uint8
	msg    []byte
}

// mark returns the entry's conntrack mark (0 when it has none).
func (e ctEntry) mark() uint32 {
	for it := (attrIter{b: e.msg}); it.next(); {
		if it.typ == ctaMark && len(it.data) >= 4 {
			return binary.BigEndian.Uint32(it.data)
		}
	}
	return 0
}

// attr returns the raw attribute typ (its header included), or nil.
func (e ctEntry) attr(typ uint16) []byte {
	for it := (attrIter{b: e.msg}); it.next(); {
		if it.typ == typ {
			return it.raw
		}
	}
	return nil
}

// dump streams the conntrack table (only entries whose mark&mask equals
// mark when filter is set; the kernel filters) into fn, one entry at a
// time, without keeping any.
func (c *ctnl) dump(filter bool, mark, mask uint32, fn func(ctEntry)) error {
	req := c.header(make([]byte, 0, 64), ctMsgGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, unix.AF_UNSPEC)
	if filter {
		req = appendU32BE(req, ctaMark, mark)
		req = appendU32BE(req, ctaMarkMask, mask)
	}
	req = finish(req, 0)
	if err := c.send(req); err != nil {
		return err
	}
	seq := c.seq
	for {
		n, err := c.recv()
		if err != nil {
			return err
		}
		done, err := c.walk(c.buf[:n], seq, fn)
		if err != nil || done {
			return err
		}
	}
}

// walk handles the messages of one datagram of a dump.
func (c *ctnl) walk(b []byte, seq uint32, fn func(ctEntry)) (done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < nlmsgHdrLen || l > len(b) {
			return true, errors.New("conntrack dump: truncated message")
		}
		if binary.NativeEndian.Uint32(b[8:]) == seq {
			switch typ {
			case unix.NLMSG_DONE:
				return true, nil
			case unix.NLMSG_ERROR:
				if l >= nlmsgHdrLen+4 {
					if e := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); e != 0 {
						return true, fmt.Errorf("conntrack dump: %w", syscall.Errno(-e))
					}
				}
				return true, nil
			default:
				if typ>>8 == nfnlSubsysCT && l >= nlmsgHdrLen+nfgenHdrLen {
					fn(ctEntry{family: b[nlmsgHdrLen], msg: b[nlmsgHdrLen+nfgenHdrLen : l]})
				}
			}
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return false, nil
}

func (c *ctnl) send(b []byte) error {
	for {
		// write(2), not sendto: the socket's default peer is the kernel,
		// and no address is allocated per call.
		_, err := unix.Write(c.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("conntrack: send: %w", err)
		}
		return nil
	}
}

func (c *ctnl) recv() (int, error) {
	for {
		n, err := unix.Read(c.fd, c.buf) // not recvfrom: no address allocated per datagram
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("conntrack: receive: %w", err)
		}
		return n, nil
	}
}

// entries asks the kernel how many entries the table holds (one small
// request: IPCTNL_MSG_CT_GET_STATS, CTA_STATS_GLOBAL_ENTRIES).
func (c *ctnl) entries() (int, error) {
	req := finish(c.header(make([]byte, 0, 32), ctMsgGetStats, unix.NLM_F_REQUEST, unix.AF_UNSPEC), 0)
	if err := c.send(req); err != nil {
		return 0, err
	}
	seq := c.seq
	for {
		k, err := c.recv()
		if err != nil {
			return 0, err
		}
		b := c.buf[:k]
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				return 0, errors.New("conntrack stats: truncated message")
			}
			if binary.NativeEndian.Uint32(b[8:]) == seq {
				switch typ := binary.NativeEndian.Uint16(b[4:]); {
				case typ == unix.NLMSG_ERROR && l >= nlmsgHdrLen+4:
					if e := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); e != 0 {
						return 0, fmt.Errorf("conntrack stats: %w", syscall.Errno(-e))
					}
					return 0, errors.New("conntrack stats: no answer")
				case typ>>8 == nfnlSubsysCT && l >= nlmsgHdrLen+nfgenHdrLen:
					for it := (attrIter{b: b[nlmsgHdrLen+nfgenHdrLen : l]}); it.next(); {
						if it.typ == ctaStatsGlobalEntries && len(it.data) >= 4 {
							return int(binary.BigEndian.Uint32(it.data)), nil
						}
					}
					return 0, errors.New("conntrack stats: no entry count")
				}
			}
			b = b[min(len(b), (l+3)&^3):]
		}
	}
}

// countMarks counts every entry by its mark: fn is called once per entry
// with the mark.
func (c *ctnl) countMarks(fn func(mark uint32)) error {
	return c.dump(false, 0, 0, func(e ctEntry) { fn(e.mark()) })
}

// acks reads n acks (the socket is used for one request or batch at a
// time, so every ack on it is one of ours); onErr sees every failed
// request (nil: the first failure is returned).
func (c *ctnl) acks(n int, onErr func(errno syscall.Errno)) error {
	var first error
	for n > 0 {
		k, err := c.recv()
		if err != nil {
			return err
		}
		b := c.buf[:k]
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				return errors.New("conntrack: truncated ack")
			}
			if binary.NativeEndian.Uint16(b[4:]) == unix.NLMSG_ERROR && l >= nlmsgHdrLen+4 {
				n--
				if e := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); e != 0 {
					if onErr != nil {
						onErr(syscall.Errno(-e))
					} else if first == nil {
						first = fmt.Errorf("conntrack: %w", syscall.Errno(-e))
					}
				}
			}
			b = b[min(len(b), (l+3)&^3):]
		}
	}
	return first
}

// batch sends requests many to a write and counts the kernel's answers.
// It is for deletes and (in tests and benchmarks) creates.
type batch struct {
	c      *ctnl
	b      []byte
	n      int // requests in b
	ok     int // acknowledged without error
	failed map[syscall.Errno]int
}

func newBatch(c *ctnl) *batch {
	return &batch{c: c, b: make([]byte, 0, ctnlBatchLimit+1024), failed: map[syscall.Errno]int{}}
}

// begin starts a request in the batch; end finishes it (and sends the
// batch when it is full). Between them the caller appends the request's
// attributes to t.b.
func (t *batch) begin(msg uint16, flags uint16, family uint8) int {
	start := len(t.b)
	t.b = t.c.header(t.b, msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags, family)
	return start
}

func (t *batch) end(start int) error {
	t.b = finish(t.b, start)
	t.n++
	if len(t.b) >= ctnlBatchLimit {
		return t.send()
	}
	return nil
}

// send writes the pending requests and reads their acks.
func (t *batch) send() error {
	if t.n == 0 {
		return nil
	}
	if err := t.c.send(t.b); err != nil {
		return err
	}
	n := t.n
	t.b, t.n = t.b[:0], 0
	bad := 0
	err := t.c.acks(n, func(e syscall.Errno) { t.failed[e]++; bad++ })
	t.ok += n - bad
	return err
}

// deleteEntry queues the deletion of e (by its original tuple, zone and
// id, copied from the dump).
func (t *batch) deleteEntry(e ctEntry) error {
	start := -1
	for it := (attrIter{b: e.msg}); it.next(); {
		if it.typ != ctaTupleOrig && it.typ != ctaZone && it.typ != ctaID {
			continue
		}
		if start < 0 {
			start = t.begin(ctMsgDelete, 0, e.family)
		}
		t.b = append(t.b, it.raw...)
		for len(t.b)%4 != 0 {
			t.b = append(t.b, 0)
		}
	}
	if start < 0 {
		return nil
	}
	return t.end(start)
}
