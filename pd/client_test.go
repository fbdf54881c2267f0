package pd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// fakeServer is an in-memory DHCPv6 server delegating prefixes, with
// knobs to misbehave. It is the Transport of the client under test.
type fakeServer struct {
	t    *testing.T
	duid dhcpv6.DUID
	in   chan *dhcpv6.Message // to the client

	mu sync.Mutex
	// prefix delegated to the next Request (and accepted in Renews).
	prefix     netip.Prefix
	t1, t2     time.Duration
	pref, vald time.Duration
	ignore     map[dhcpv6.MessageType]int // how many more of this type to drop (-1: all)
	noBinding  bool                       // answer Renew/Rebind with NoBinding
	rapid      bool                       // answer a Solicit with Rapid Commit by a Reply
	seen       []seenMsg
	released   []netip.Prefix
}

type seenMsg struct {
	at   time.Time
	m    *dhcpv6.Message
	sent bool // answered
}

func newFakeServer(t *testing.T, p string) *fakeServer {
	return &fakeServer{t: t, duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x53}},
		in: make(chan *dhcpv6.Message, 16), prefix: netip.MustParsePrefix(p),
		t1: time.Second, t2: 2 * time.Second, pref: 3 * time.Second, vald: 4 * time.Second, ignore: map[dhcpv6.MessageType]int{}}
}

func (f *fakeServer) Close() error { return nil }

func (f *fakeServer) Receive(deadline time.Time) (*dhcpv6.Message, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case m := <-f.in:
		return m, nil
	case <-t.C:
		return nil, os.ErrDeadlineExceeded
	}
}

// Send is the server side: it answers what the client sent.
func (f *fakeServer) Send(m *dhcpv6.Message) error {
	// round trip through the wire format, as a real server would see it
	m, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		f.t.Errorf("client sent an unparsable message: %v", err)
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, seenMsg{at: time.Now(), m: m})
	if n := f.ignore[m.MessageType]; n != 0 {
		if n > 0 {
			f.ignore[m.MessageType]--
		}
		return nil
	}
	f.seen[len(f.seen)-1].sent = true
	ia := m.Options.OneIAPD()
	if ia == nil || m.Options.ClientID() == nil {
		f.t.Errorf("%s without IA_PD or client ID", m.MessageType)
		return nil
	}
	reply := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: m.TransactionID}
	reply.AddOption(dhcpv6.OptClientID(m.Options.ClientID()))
	reply.AddOption(dhcpv6.OptServerID(f.duid))
	grant := &dhcpv6.OptIAPD{IaId: ia.IaId, T1: f.t1, T2: f.t2}
	pfx := func(p netip.Prefix, pref, valid time.Duration) *dhcpv6.OptIAPrefix {
		return &dhcpv6.OptIAPrefix{PreferredLifetime: pref, ValidLifetime: valid,
			Prefix: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}}
	}
	switch m.MessageType {
	case dhcpv6.MessageTypeSolicit:
		if f.rapid && m.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			reply.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
			grant.Options.Add(pfx(f.prefix, f.pref, f.vald))
			break
		}
		reply.MessageType = dhcpv6.MessageTypeAdvertise
		reply.AddOption(dhcpv6.OptPreference(255))
		grant.Options.Add(pfx(f.prefix, f.pref, f.vald))
	case dhcpv6.MessageTypeRequest:
		grant.Options.Add(pfx(f.prefix, f.pref, f.vald))
	case dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		if f.noBinding {
			grant.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no such lease"})
		} else {
			grant.Options.Add(pfx(f.prefix, f.pref, f.vald))
		}
	case dhcpv6.MessageTypeRelease:
		for _, p := range ia.Options.Prefixes() {
			a, _ := netip.AddrFromSlice(p.Prefix.IP)
			ones, _ := p.Prefix.Mask.Size()
			f.released = append(f.released, netip.PrefixFrom(a, ones))
		}
		grant.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
	default:
		return nil
	}
	reply.AddOption(grant)
	f.in <- reply
	return nil
}

func (f *fakeServer) set(fn func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeServer) messages(t dhcpv6.MessageType) []seenMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ms []seenMsg
	for _, s := range f.seen {
		if s.m.MessageType == t {
			ms = append(ms, s)
		}
	}
	return ms
}

var clientDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}

// start runs a client against f; it returns the leases it reports and a
// stop function that cancels it and waits for its end.
func start(t *testing.T, f *fakeServer) (<-chan Lease, func()) {
	_, leases, stop := startWith(t, f, Options{})
	return leases, stop
}

// startWith runs a client with options o (its Transport and DUID set to
// f and clientDUID).
func startWith(t *testing.T, f *fakeServer, o Options) (*Client, <-chan Lease, func()) {
	leases := make(chan Lease, 64)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o.Transport, o.DUID = f, clientDUID
	c := New("isp1", "wan1", 56, func(l Lease) { leases <- l }, log, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("client did not stop within 10 s")
		}
	}
	t.Cleanup(stop)
	return c, leases, stop
}

func next(t *testing.T, ch <-chan Lease, timeout time.Duration, what string) Lease {
	t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(timeout):
		t.Fatalf("no %s within %s", what, timeout)
	}
	return Lease{}
}

// TestBindRenewRelease: Solicit (with the /56 hint), Request, Reply; the
// lease is renewed at T1 with a Renew to the server; a stop after Drop
// releases it.
func TestBindRenewRelease(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	c, leases, stop := startWith(t, f, Options{})
	t0 := time.Now()
	l := next(t, leases, 5*time.Second, "lease")
	if l.Link != "isp1" || l.Prefix.String() != "2001:db8:1:8000::/56" || l.Lost {
		t.Fatalf("lease %+v", l)
	}
	if d := time.Until(l.Valid); d < 3*time.Second || d > 4*time.Second {
		t.Errorf("valid lifetime left %s, want about 4s", d)
	}
	if d := l.Valid.Sub(l.Preferred); d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("valid − preferred = %s, want 1s", d)
	}
	sol := f.messages(dhcpv6.MessageTypeSolicit)
	if len(sol) != 1 {
		t.Fatalf("%d Solicits, want 1", len(sol))
	}
	hint := sol[0].m.Options.OneIAPD().Options.Prefixes()
	if len(hint) != 1 {
		t.Fatalf("Solicit IA_PD has %d prefixes, want the /56 hint", len(hint))
	}
	if ones, _ := hint[0].Prefix.Mask.Size(); ones != 56 {
		t.Errorf("hint length /%d, want /56", ones)
	}
	req := f.messages(dhcpv6.MessageTypeRequest)
	if len(req) != 1 || req[0].m.Options.ServerID() == nil || !req[0].m.Options.ServerID().Equal(f.duid) {
		t.Fatalf("Requests %+v: want one, to the server's DUID", req)
	}
	// Renewed at T1 (1s after the Reply), twice over 3 seconds, same prefix.
	for i := range 2 {
		r := next(t, leases, 3*time.Second, "renewal")
		if r.Prefix != l.Prefix || r.Lost {
			t.Fatalf("renewal %d: %+v", i, r)
		}
	}
	ren := f.messages(dhcpv6.MessageTypeRenew)
	if len(ren) < 2 {
		t.Fatalf("%d Renews", len(ren))
	}
	if gap := ren[1].at.Sub(ren[0].at); gap < 800*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("Renews %s apart, want T1 = 1s", gap)
	}
	if !ren[0].m.Options.ServerID().Equal(f.duid) || len(ren[0].m.Options.OneIAPD().Options.Prefixes()) != 1 {
		t.Errorf("Renew must name the server and the prefix: %s", ren[0].m)
	}
	t.Logf("bound %s after %s; renewed twice", l.Prefix, time.Since(t0).Round(time.Millisecond))
	c.Drop()
	stop()
	f.mu.Lock()
	rel := f.released
	f.mu.Unlock()
	if len(rel) != 1 || rel[0] != l.Prefix {
		t.Errorf("released %v, want [%s]", rel, l.Prefix)
	}
}

// TestRebind: a server that stops answering Renews is asked with Rebind
// (no server ID) after T2.
func TestRebind(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	leases, _ := start(t, f)
	l := next(t, leases, 5*time.Second, "lease")
	f.set(func(f *fakeServer) { f.ignore[dhcpv6.MessageTypeRenew] = -1 })
	r := next(t, leases, 4*time.Second, "rebind")
	if r.Prefix != l.Prefix || r.Lost {
		t.Fatalf("after rebind: %+v", r)
	}
	reb := f.messages(dhcpv6.MessageTypeRebind)
	if len(reb) == 0 || reb[0].m.Options.ServerID() != nil {
		t.Fatalf("Rebinds %v: want at least one, without a server ID", reb)
	}
	ren := f.messages(dhcpv6.MessageTypeRenew)
	if len(ren) == 0 {
		t.Fatal("no Renew before the Rebind")
	}
	if gap := reb[0].at.Sub(ren[0].at); gap < 800*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("Rebind %s after the first Renew, want T2 − T1 = 1s", gap)
	}
}

// TestNoBindingRenumbers: a server that lost the binding answers the
// Renew with NoBinding; the client solicits and gets the new prefix.
func TestNoBindingRenumbers(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	leases, _ := start(t, f)
	l := next(t, leases, 5*time.Second, "lease")
	f.set(func(f *fakeServer) { f.noBinding, f.prefix = true, netip.MustParsePrefix("2001:db8:1:4000::/56") })
	r := next(t, leases, 4*time.Second, "new lease")
	if r.Prefix.String() != "2001:db8:1:4000::/56" || r.Lost {
		t.Fatalf("after NoBinding: %+v (was %s)", r, l.Prefix)
	}
	if len(f.messages(dhcpv6.MessageTypeSolicit)) != 2 {
		t.Errorf("want a second Solicit after NoBinding")
	}
}

// TestLost: a server that goes silent lets the lease expire at its valid
// lifetime; the loss is reported and the client solicits again with
// RFC 8415 backoff.
func TestLost(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	leases, _ := start(t, f)
	l := next(t, leases, 5*time.Second, "lease")
	f.set(func(f *fakeServer) {
		for _, m := range []dhcpv6.MessageType{dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeSolicit} {
			f.ignore[m] = -1
		}
	})
	r := next(t, leases, 6*time.Second, "loss")
	if !r.Lost || r.Prefix != l.Prefix {
		t.Fatalf("want %s lost, got %+v", l.Prefix, r)
	}
	if late := time.Since(l.Valid); late < 0 || late > 500*time.Millisecond {
		t.Errorf("loss reported %s after the valid lifetime ended", late)
	}
	// Solicits again: 1–1.1 s, then about twice that.
	time.Sleep(3500 * time.Millisecond)
	sol := f.messages(dhcpv6.MessageTypeSolicit)
	if len(sol) < 3 {
		t.Fatalf("%d Solicits, want the first and two after the loss", len(sol))
	}
	g1, g2 := sol[2].at.Sub(sol[1].at), 0*time.Second
	if len(sol) >= 4 {
		g2 = sol[3].at.Sub(sol[2].at)
	}
	if g1 < time.Second || g1 > 1200*time.Millisecond {
		t.Errorf("first Solicit retransmission after %s, want 1–1.1 s", g1)
	}
	if g2 != 0 && (g2 < 1700*time.Millisecond || g2 > 2600*time.Millisecond) {
		t.Errorf("second retransmission after %s, want about 2 × the first", g2)
	}
	var last time.Duration
	for _, s := range sol[1:] {
		e := s.m.Options.ElapsedTime()
		if e < last {
			t.Errorf("elapsed time went back: %s after %s", e, last)
		}
		last = e
	}
	if last == 0 {
		t.Error("retransmitted Solicits carry elapsed time 0")
	}
}

// TestRetransmitRequest: lost Requests are retransmitted (same
// transaction), and the Reply to a retransmission binds.
func TestRetransmitRequest(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	f.ignore[dhcpv6.MessageTypeRequest] = 2
	leases, _ := start(t, f)
	l := next(t, leases, 8*time.Second, "lease")
	req := f.messages(dhcpv6.MessageTypeRequest)
	if len(req) != 3 || l.Prefix != f.prefix {
		t.Fatalf("%d Requests, lease %+v", len(req), l)
	}
	if req[0].m.TransactionID != req[2].m.TransactionID {
		t.Error("a retransmission changed the transaction ID")
	}
}

// TestRestart: a stop without Drop keeps the lease (no Release) in the
// state file; a new client with that file reports it at once, before any
// message, then Renews it with its server instead of Soliciting.
func TestRestart(t *testing.T) {
	f := newFakeServer(t, "2001:db8:1:8000::/56")
	f.set(func(f *fakeServer) {
		f.t1, f.t2, f.pref, f.vald = 20*time.Second, 30*time.Second, 40*time.Second, 60*time.Second
	})
	state := filepath.Join(t.TempDir(), "pd-isp1.json")
	_, leases, stop := startWith(t, f, Options{StateFile: state})
	l := next(t, leases, 5*time.Second, "lease")
	stop()
	f.mu.Lock()
	rel, nseen := len(f.released), len(f.seen)
	f.mu.Unlock()
	if rel != 0 {
		t.Fatalf("a stop without Drop released the prefix")
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	f.set(func(f *fakeServer) { f.ignore[dhcpv6.MessageTypeRenew] = 1 }) // the first Renew is lost
	t0 := time.Now()
	c, leases, stop := startWith(t, f, Options{StateFile: state})
	r := next(t, leases, time.Second, "restored lease")
	f.mu.Lock()
	seenAtRestore := len(f.seen) - nseen
	f.mu.Unlock()
	if r.Prefix != l.Prefix || !r.Valid.Equal(l.Valid.Round(0)) && r.Valid.Sub(l.Valid).Abs() > time.Second {
		t.Fatalf("restored %+v, want %+v", r, l)
	}
	if seenAtRestore > 1 {
		t.Errorf("%d messages before the restored lease was reported", seenAtRestore)
	}
	if got, _ := c.Lease(); got.Prefix != l.Prefix {
		t.Errorf("Lease() = %+v right after restore", got)
	}
	if since, ok := c.BoundSince(); !ok || since.After(t0) || t0.Sub(since) > 10*time.Second {
		t.Errorf("BoundSince after restore %s (%v), want the first run's bind, before the restart", since, ok)
	}
	rn := next(t, leases, 15*time.Second, "renewal of the restored lease")
	if rn.Prefix != l.Prefix || rn.Lost {
		t.Errorf("renewal %+v", rn)
	}
	if n := len(f.messages(dhcpv6.MessageTypeSolicit)); n != 1 {
		t.Errorf("%d Solicits over both runs, want the first run's only", n)
	}
	ren := f.messages(dhcpv6.MessageTypeRenew)
	if len(ren) < 2 || !ren[0].m.Options.ServerID().Equal(f.duid) || ren[0].at.Sub(t0) > time.Second {
		t.Errorf("Renews %d, first %s after restart: want at once, to the saved server", len(ren), ren[0].at.Sub(t0))
	}
	t.Logf("restored %s %s after start; renewed %s after start (first Renew lost)", r.Prefix, time.Since(t0).Round(time.Millisecond), ren[1].at.Sub(t0).Round(time.Millisecond))
	// Drop: released and forgotten.
	c.Drop()
	stop()
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file after Drop: %v", err)
	}
	if f.mu.Lock(); len(f.released) != 1 {
		t.Errorf("released %v after Drop", f.released)
	}
	f.mu.Unlock()
}

// TestRestartFallsBack: a saved lease that expired, is corrupt, or is
// refused by the server (NoBinding) ends in a Solicit.
func TestRestartFallsBack(t *testing.T) {
	now := time.Now()
	old := Lease{Prefix: netip.MustParsePrefix("2001:db8:1:4000::/56"), Obtained: now.Add(-time.Hour),
		Preferred: now.Add(-time.Minute), Valid: now.Add(-time.Second), T1: now.Add(-10 * time.Minute), T2: now.Add(-5 * time.Minute)}
	iaid := New("isp1", "wan1", 56, nil, nil, Options{}).iaid
	for _, tc := range []struct {
		name  string
		write func(path string)
	}{
		{"expired", func(p string) { SaveState(p, Saved{DUID: clientDUID, IAID: iaid, Lease: old}) }},
		{"corrupt", func(p string) { os.WriteFile(p, []byte(`{"duid": 1`), 0o600) }},
		{"refused", func(p string) {
			l := old
			l.Valid, l.Preferred, l.T1, l.T2 = now.Add(time.Hour), now.Add(time.Hour), now.Add(time.Hour), now.Add(time.Hour)
			l.Server = &dhcpv6.DUIDLL{HWType: 1, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x53}}
			SaveState(p, Saved{DUID: clientDUID, IAID: iaid, Lease: l})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, "2001:db8:1:8000::/56")
			if tc.name == "refused" {
				f.set(func(f *fakeServer) { f.noBinding = true })
			}
			state := filepath.Join(t.TempDir(), "pd-isp1.json")
			tc.write(state)
			_, leases, _ := startWith(t, f, Options{StateFile: state})
			l := next(t, leases, 5*time.Second, "lease")
			if tc.name == "refused" {
				if l.Prefix != old.Prefix {
					t.Fatalf("first report %s, want the saved %s in use at once", l.Prefix, old.Prefix)
				}
				l = next(t, leases, 5*time.Second, "new lease")
			}
			if l.Prefix.String() != "2001:db8:1:8000::/56" || len(f.messages(dhcpv6.MessageTypeSolicit)) != 1 {
				t.Errorf("lease %s after %d Solicits, want the server's after one", l.Prefix, len(f.messages(dhcpv6.MessageTypeSolicit)))
			}
			s, err := LoadState(state)
			if err != nil || s.Lease.Prefix != l.Prefix {
				t.Errorf("state after the new lease: %+v %v", s, err)
			}
		})
	}
}

// TestRapidCommit: with RapidCommit the Solicit carries the option and a
// Reply to it binds without a Request; without it the server's Reply
// path is never taken (four-message exchange).
func TestRapidCommit(t *testing.T) {
	for _, rc := range []bool{true, false} {
		f := newFakeServer(t, "2001:db8:1:8000::/56")
		f.set(func(f *fakeServer) { f.rapid = true })
		_, leases, stop := startWith(t, f, Options{RapidCommit: rc})
		l := next(t, leases, 5*time.Second, "lease")
		stop()
		sol := f.messages(dhcpv6.MessageTypeSolicit)
		req := f.messages(dhcpv6.MessageTypeRequest)
		if l.Prefix.String() != "2001:db8:1:8000::/56" || len(sol) != 1 || (sol[0].m.GetOneOption(dhcpv6.OptionRapidCommit) != nil) != rc {
			t.Errorf("rapid_commit %v: lease %s, Solicits %d (option present: %v)", rc, l.Prefix, len(sol), len(sol) > 0 && sol[0].m.GetOneOption(dhcpv6.OptionRapidCommit) != nil)
		}
		if want := map[bool]int{true: 0, false: 1}[rc]; len(req) != want {
			t.Errorf("rapid_commit %v: %d Requests, want %d", rc, len(req), want)
		}
	}
}
