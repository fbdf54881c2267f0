package pd

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// Transport carries DHCPv6 messages between the client and the servers
// of its link (see Listen).
type Transport interface {
	// Send multicasts m to All_DHCP_Relay_Agents_and_Servers.
	Send(m *dhcpv6.Message) error
	// Receive returns the next message, or an error wrapping
	// os.ErrDeadlineExceeded when none came before deadline.
	Receive(deadline time.Time) (*dhcpv6.Message, error)
	Close() error
}

// Options tune a Client.
type Options struct {
	// Transport, if set, is used instead of a UDP socket on the
	// interface (tests).
	Transport Transport
	// DUID is the client's identity (nil: DUID-LL from the interface's
	// hardware address, stable across restarts).
	DUID dhcpv6.DUID
	// Enter runs fn where the interface lives, to open the socket there
	// (nil: here).
	Enter func(fn func() error) error
	// StateFile, if set, keeps the binding across restarts: written
	// (atomically, 0600) on every lease change, removed when the lease is
	// lost or released. On start a saved lease still valid is used at
	// once and renewed (rebound if its server is unknown) instead of
	// soliciting a new one.
	StateFile string
	// RapidCommit asks for the two-message exchange (RFC 8415 18.2.1):
	// Solicit with Rapid Commit, a Reply to it binds at once.
	RapidCommit bool
}

// Client holds one link's delegation. Its state is owned by the Run
// goroutine; Lease reads a copy.
type Client struct {
	link, iface string
	length      int
	report      func(Lease)
	log         *slog.Logger
	opts        Options
	iaid        [4]byte

	drop atomic.Bool // release the lease and forget it when Run ends

	mu      sync.Mutex
	lease   Lease
	bound   bool
	since   time.Time // when the held prefix was first obtained
	changes map[string]uint64
}

// New returns a client asking for a /length on link's interface iface;
// report is called from the client's goroutine on every change of lease
// (it must not block for long).
func New(link, iface string, length int, report func(Lease), log *slog.Logger, opts Options) *Client {
	h := fnv.New32a()
	h.Write([]byte(link))
	var iaid [4]byte
	copy(iaid[:], h.Sum(nil))
	return &Client{link: link, iface: iface, length: length, report: report, log: log, opts: opts, iaid: iaid, changes: map[string]uint64{}}
}

// Drop makes Run, when its context ends, release the lease held and
// remove its saved state (the delegation is no longer wanted). Without
// Drop a stop keeps both, so that a restart keeps the prefix.
func (c *Client) Drop() { c.drop.Store(true) }

// Link returns the link the client works on.
func (c *Client) Link() string { return c.link }

// Lease returns the delegation held, if any.
func (c *Client) Lease() (Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease, c.bound
}

// BoundSince returns when the prefix held was first obtained (renewals
// keep it), and false when none is held.
func (c *Client) BoundSince() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.since, c.bound
}

// Changes returns how many lease changes of each kind happened.
func (c *Client) Changes() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]uint64, len(c.changes))
	for k, v := range c.changes {
		m[k] = v
	}
	return m
}

// RFC 8415 section 7.6 transmission parameters.
const (
	solMaxDelay = 1 * time.Second
	solTimeout  = 1 * time.Second
	solMaxRT    = 3600 * time.Second
	reqTimeout  = 1 * time.Second
	reqMaxRT    = 30 * time.Second
	reqMaxRC    = 10
	renTimeout  = 10 * time.Second
	renMaxRT    = 600 * time.Second
	rebTimeout  = 10 * time.Second
	rebMaxRT    = 600 * time.Second
	relTimeout  = 1 * time.Second
	relMaxRC    = 4
)

// Run holds a delegation until ctx is cancelled, then releases it.
func (c *Client) Run(ctx context.Context) error {
	tr := c.opts.Transport
	duid := c.opts.DUID
	for wait := 500 * time.Millisecond; tr == nil || duid == nil; wait = min(2*wait, 10*time.Second) {
		var err error
		if duid == nil {
			duid, err = c.interfaceDUID()
		}
		if err == nil && tr == nil {
			tr, err = c.listen()
		}
		if err == nil {
			break
		}
		c.log.Warn("dhcpv6-pd: cannot use the interface yet", "link", c.link, "dev", c.iface, "err", err, "retry", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	defer tr.Close()
	s := &session{c: c, tr: tr, duid: duid}
	s.run(ctx, c.restore(duid))
	return nil
}

func (c *Client) enter(fn func() error) error {
	if c.opts.Enter != nil {
		return c.opts.Enter(fn)
	}
	return fn()
}

func (c *Client) interfaceDUID() (dhcpv6.DUID, error) {
	var d dhcpv6.DUID
	err := c.enter(func() error {
		ifi, err := net.InterfaceByName(c.iface)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) == 0 {
			return fmt.Errorf("%s has no hardware address for a DUID", c.iface)
		}
		d = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}
		return nil
	})
	return d, err
}

func (c *Client) listen() (Transport, error) {
	var t Transport
	err := c.enter(func() error {
		var err error
		t, err = Listen(c.iface)
		return err
	})
	return t, err
}

// session is the state of one Run: owned by its goroutine.
type session struct {
	c    *Client
	tr   Transport
	duid dhcpv6.DUID
	held *Lease
	// restoredSince is when the saved lease restored was first obtained.
	restoredSince time.Time
}

func (s *session) run(ctx context.Context, saved *Saved) {
	c := s.c
	if saved != nil {
		// A binding kept from the last run: use it at once, then have its
		// server (or any, if unknown) confirm it; a refusal solicits again
		// while it lasts, silence keeps it until its valid lifetime ends.
		s.restoredSince = saved.Since
		s.bind(saved.Lease, "restored")
		s.extend(ctx)
	} else if !sleep(ctx, time.Duration(rand.Int64N(int64(solMaxDelay)))) {
		// RFC 8415 18.2.1: delay the first Solicit by up to SOL_MAX_DELAY.
		return
	}
	for ctx.Err() == nil {
		switch {
		case s.held == nil:
			if l, err := s.acquire(ctx, time.Time{}); err == nil {
				s.bind(l, "bound")
			}
		case !time.Now().Before(s.held.T1):
			s.extend(ctx)
		default:
			sleep(ctx, time.Until(s.held.T1))
		}
	}
	if c.drop.Load() {
		if s.held != nil {
			s.release()
		}
		c.forget()
	}
	c.mu.Lock()
	c.bound = false
	c.mu.Unlock()
}

// extend renews the held lease at T1 (Renew to its server until T2,
// then Rebind to any server until the valid lifetime ends). A NoBinding
// answer starts over with a Solicit while the old lease lasts; the end of
// the valid lifetime loses it.
func (s *session) extend(ctx context.Context) {
	h := *s.held
	var l Lease
	err := fmt.Errorf("server unknown: %w", os.ErrDeadlineExceeded)
	if h.Server != nil {
		l, err = s.exchange(ctx, dhcpv6.MessageTypeRenew, h.Server, h.Prefix, renTimeout, renMaxRT, 0, h.T2)
	}
	kind := "renewed"
	if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
		s.c.log.Warn("dhcpv6-pd: no answer to Renew before T2 (or server unknown): rebinding", "link", s.c.link, "prefix", h.Prefix)
		l, err = s.exchange(ctx, dhcpv6.MessageTypeRebind, nil, h.Prefix, rebTimeout, rebMaxRT, 0, h.Valid)
		kind = "rebound"
	}
	switch {
	case ctx.Err() != nil:
		return
	case err == nil:
		s.bind(l, kind)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.lose("valid lifetime ended without an answer to Renew or Rebind")
		return
	}
	// NoBinding, NoPrefixAvail or another refusal: solicit again while the
	// old lease lasts (RFC 8415 18.2.10.1).
	s.c.log.Warn("dhcpv6-pd: server no longer extends the delegation: soliciting again", "link", s.c.link, "prefix", h.Prefix, "err", err)
	if l, err := s.acquire(ctx, h.Valid); err == nil {
		s.bind(l, "changed")
	} else if ctx.Err() == nil {
		s.lose("refused by the server and no new delegation before the valid lifetime ended")
	}
}

// acquire solicits until a server delegates a prefix, ctx is cancelled
// or, when until is set, until passes.
func (s *session) acquire(ctx context.Context, until time.Time) (Lease, error) {
	for wait := time.Second; ; wait = min(2*wait, time.Minute) {
		adv, committed, err := s.solicit(ctx, until)
		if err != nil {
			return Lease{}, err
		}
		if committed {
			return adv, nil
		}
		l, err := s.exchange(ctx, dhcpv6.MessageTypeRequest, adv.Server, adv.Prefix, reqTimeout, reqMaxRT, reqMaxRC, until)
		if err == nil {
			return l, nil
		}
		if ctx.Err() != nil || (!until.IsZero() && time.Now().After(until)) {
			return Lease{}, err
		}
		s.c.log.Warn("dhcpv6-pd: Request failed: soliciting again", "link", s.c.link, "err", err, "in", wait)
		d := wait
		if !until.IsZero() {
			d = min(d, time.Until(until))
		}
		if !sleep(ctx, d) {
			return Lease{}, ctx.Err()
		}
	}
}

// solicit sends Solicits (with our length as a hint) until an acceptable
// Advertise arrives: it collects Advertises during the first
// retransmission period and takes the most preferred (at once if one has
// preference 255), RFC 8415 18.2.1 and 18.2.9. With Rapid Commit a Reply
// carrying the option binds at once (committed); Advertises are still
// taken from servers that do not do it.
func (s *session) solicit(ctx context.Context, until time.Time) (Lease, bool, error) {
	hint := &dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: net.IPv6unspecified, Mask: net.CIDRMask(s.c.length, 128)}}
	var best *Lease
	bestPref := -1
	committed := false
	accept := func(m *dhcpv6.Message) (bool, error) {
		if m.MessageType == dhcpv6.MessageTypeReply && s.c.opts.RapidCommit && m.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			l, err := parseLease(m, s.duid, s.c.iaid, time.Now(), netip.Prefix{})
			if err != nil {
				s.c.log.Debug("dhcpv6-pd: rapid-commit Reply ignored", "link", s.c.link, "err", err)
				return false, nil
			}
			best, committed = &l, true
			return true, nil
		}
		if m.MessageType != dhcpv6.MessageTypeAdvertise {
			return false, nil
		}
		l, err := parseLease(m, s.duid, s.c.iaid, time.Now(), netip.Prefix{})
		if err != nil {
			s.c.log.Debug("dhcpv6-pd: Advertise ignored", "link", s.c.link, "err", err)
			return false, nil
		}
		if p := int(m.Options.Preference()); p > bestPref {
			best, bestPref = &l, p
		}
		return bestPref == 255, nil
	}
	settle := func() bool { return best != nil }
	err := s.retransmit(ctx, dhcpv6.MessageTypeSolicit, nil, hint, solTimeout, solMaxRT, 0, until, accept, settle)
	if err != nil {
		return Lease{}, false, err
	}
	return *best, committed, nil
}

// exchange sends a Request, Renew or Rebind for prefix and returns the
// lease of the Reply.
func (s *session) exchange(ctx context.Context, t dhcpv6.MessageType, server dhcpv6.DUID, prefix netip.Prefix, irt, mrt time.Duration, mrc int, mrd time.Time) (Lease, error) {
	var l Lease
	var lerr error
	accept := func(m *dhcpv6.Message) (bool, error) {
		if m.MessageType != dhcpv6.MessageTypeReply {
			return false, nil
		}
		if t == dhcpv6.MessageTypeRenew || t == dhcpv6.MessageTypeRequest {
			if sid := m.Options.ServerID(); sid == nil || !sid.Equal(server) {
				return false, nil
			}
		}
		l, lerr = parseLease(m, s.duid, s.c.iaid, time.Now(), prefix)
		var se *StatusError
		if errors.As(lerr, &se) && (se.Code == iana.StatusUnspecFail || se.Code == iana.StatusUseMulticast) {
			return false, nil // keep retransmitting (RFC 8415 18.2.10)
		}
		return true, lerr
	}
	var pfx *dhcpv6.OptIAPrefix
	if prefix.IsValid() {
		pfx = &dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 128)}}
	}
	err := s.retransmit(ctx, t, server, pfx, irt, mrt, mrc, mrd, accept, nil)
	if err != nil {
		return Lease{}, err
	}
	return l, lerr
}

// message builds one client message of the transaction xid.
func (s *session) message(t dhcpv6.MessageType, xid dhcpv6.TransactionID, server dhcpv6.DUID, pfx *dhcpv6.OptIAPrefix, elapsed time.Duration) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: t, TransactionID: xid}
	m.AddOption(dhcpv6.OptClientID(s.duid))
	if server != nil {
		m.AddOption(dhcpv6.OptServerID(server))
	}
	m.AddOption(dhcpv6.OptElapsedTime(min(elapsed, 0xffff*10*time.Millisecond)))
	if t == dhcpv6.MessageTypeSolicit && s.c.opts.RapidCommit {
		m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
	}
	ia := &dhcpv6.OptIAPD{IaId: s.c.iaid}
	if pfx != nil {
		ia.Options.Add(pfx)
	}
	m.AddOption(ia)
	return m
}

// retransmit runs one transaction with RFC 8415 section 15's
// retransmission: RT = IRT ± 10 %, doubled each time up to MRT ± 10 %,
// at most mrc transmissions (0: no limit), until mrd (zero: none); the
// first Solicit's RT is only ever longer than IRT. accept sees every
// message of the transaction; settle, at the end of the first RT, may end
// it successfully (Solicit's collected Advertises). The error wraps
// os.ErrDeadlineExceeded when it ran out.
func (s *session) retransmit(ctx context.Context, t dhcpv6.MessageType, server dhcpv6.DUID, pfx *dhcpv6.OptIAPrefix,
	irt, mrt time.Duration, mrc int, mrd time.Time, accept func(*dhcpv6.Message) (bool, error), settle func() bool) error {
	xid, err := dhcpv6.GenerateTransactionID()
	if err != nil {
		return err
	}
	jitter := func() float64 { return rand.Float64()*0.2 - 0.1 }
	start := time.Now()
	var rt time.Duration
	for n := 1; ; n++ {
		if rt == 0 {
			r := jitter()
			if t == dhcpv6.MessageTypeSolicit {
				r = (r + 0.1) / 2 // RAND strictly greater than 0 for the first Solicit
			}
			rt = irt + time.Duration(r*float64(irt))
		} else {
			rt = 2*rt + time.Duration(jitter()*float64(rt))
			if mrt > 0 && rt > mrt {
				rt = mrt + time.Duration(jitter()*float64(mrt))
			}
		}
		deadline := time.Now().Add(rt)
		if !mrd.IsZero() && deadline.After(mrd) {
			deadline = mrd
		}
		if !mrd.IsZero() && !time.Now().Before(mrd) {
			return fmt.Errorf("%s: %w", t, os.ErrDeadlineExceeded)
		}
		if err := s.tr.Send(s.message(t, xid, server, pfx, time.Since(start))); err != nil {
			s.c.log.Warn("dhcpv6-pd: send", "link", s.c.link, "type", t, "err", err)
		}
		for {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// wake up at least every 200 ms to notice cancellation
			m, err := s.tr.Receive(minTime(deadline, time.Now().Add(200*time.Millisecond)))
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					s.c.log.Debug("dhcpv6-pd: receive", "link", s.c.link, "err", err)
					if !sleep(ctx, 50*time.Millisecond) {
						return ctx.Err()
					}
				}
				if time.Now().Before(deadline) {
					continue
				}
				break
			}
			if m.TransactionID != xid {
				continue
			}
			done, err := accept(m)
			if done {
				return err
			}
		}
		if settle != nil && settle() {
			return nil
		}
		if mrc > 0 && n >= mrc {
			return fmt.Errorf("%s: no answer after %d transmissions: %w", t, n, os.ErrDeadlineExceeded)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// bind makes l the held lease and reports it.
func (s *session) bind(l Lease, kind string) {
	c := s.c
	l.Link = c.link
	old := s.held
	switch {
	case old != nil && old.Prefix != l.Prefix:
		kind = "changed"
	case kind == "changed":
		kind = "renewed"
	}
	s.held = &l
	c.mu.Lock()
	if old == nil || old.Prefix != l.Prefix {
		c.since = time.Now()
		if kind == "restored" {
			c.since = s.restoredSince
		}
	}
	c.lease, c.bound = l, true
	c.changes[kind]++
	since := c.since
	c.mu.Unlock()
	attrs := []any{"link", c.link, "prefix", l.Prefix, "preferred", time.Until(l.Preferred).Round(time.Second), "valid", time.Until(l.Valid).Round(time.Second),
		"t1", time.Until(l.T1).Round(time.Second), "t2", time.Until(l.T2).Round(time.Second)}
	if old != nil && old.Prefix != l.Prefix {
		attrs = append(attrs, "was", old.Prefix)
	}
	c.log.Info("dhcpv6-pd: delegation "+kind, attrs...)
	if c.opts.StateFile != "" && kind != "restored" {
		if err := SaveState(c.opts.StateFile, Saved{DUID: s.duid, IAID: c.iaid, Lease: l, Since: since}); err != nil {
			c.log.Warn("dhcpv6-pd: lease not saved: a restart will solicit again", "link", c.link, "err", err)
		}
	}
	c.report(l)
}

// restore returns the binding saved by an earlier run, if it is ours
// (same DUID and IAID) and its valid lifetime has not ended. A file that
// cannot be read or parsed is logged and ignored.
func (c *Client) restore(duid dhcpv6.DUID) *Saved {
	if c.opts.StateFile == "" {
		return nil
	}
	sv, err := LoadState(c.opts.StateFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		c.log.Warn("dhcpv6-pd: saved lease ignored: soliciting", "link", c.link, "err", err)
		return nil
	case !sv.DUID.Equal(duid) || sv.IAID != c.iaid:
		c.log.Warn("dhcpv6-pd: saved lease is for another DUID or IAID: soliciting", "link", c.link, "file", c.opts.StateFile)
		return nil
	case !time.Now().Before(sv.Lease.Valid):
		c.log.Info("dhcpv6-pd: saved lease expired: soliciting", "link", c.link, "prefix", sv.Lease.Prefix, "valid_until", sv.Lease.Valid)
		c.forget()
		return nil
	}
	sv.Lease.Link = c.link
	return &sv
}

// forget removes the saved binding.
func (c *Client) forget() {
	if c.opts.StateFile == "" {
		return
	}
	if err := os.Remove(c.opts.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("dhcpv6-pd: saved lease not removed", "link", c.link, "err", err)
	}
}

// lose drops the held lease and reports it lost.
func (s *session) lose(why string) {
	c := s.c
	l := *s.held
	l.Lost = true
	s.held = nil
	c.mu.Lock()
	c.lease, c.bound = Lease{}, false
	c.changes["lost"]++
	c.mu.Unlock()
	c.log.Warn("dhcpv6-pd: delegation lost", "link", c.link, "prefix", l.Prefix, "why", why)
	c.forget()
	c.report(l)
}

// release gives the held prefix back (RFC 8415 18.2.7), a few tries at
// most since the daemon is stopping.
func (s *session) release() {
	h := s.held
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pfx := &dhcpv6.OptIAPrefix{Prefix: &net.IPNet{IP: h.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(h.Prefix.Bits(), 128)}}
	err := s.retransmit(ctx, dhcpv6.MessageTypeRelease, h.Server, pfx, relTimeout, 0, relMaxRC, time.Now().Add(3*time.Second),
		func(m *dhcpv6.Message) (bool, error) { return m.MessageType == dhcpv6.MessageTypeReply, nil }, nil)
	if err != nil {
		s.c.log.Warn("dhcpv6-pd: Release unanswered", "link", s.c.link, "prefix", h.Prefix, "err", err)
		return
	}
	s.c.log.Info("dhcpv6-pd: delegation released", "link", s.c.link, "prefix", h.Prefix)
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
