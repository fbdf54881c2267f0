package dns

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// Server is the authoritative DNS server and RFC 2136 pusher.
type Server struct {
	log  *slog.Logger
	src  monitor.Source
	ctr  counters
	keys keyring
	view atomic.Pointer[view]
	rot  atomic.Uint64

	// mu guards the control state below. The query path never takes it.
	mu        sync.Mutex
	cfg       *config.Config
	zones     []*zone
	links     map[string]*linkState
	lastGood  lastGood
	serials   map[string]uint32
	content   map[string]uint64 // contentHash by zone
	seed      maphash.Seed
	notifyGen map[string]*atomic.Uint64
	rrl       *rrl
	udpSize   int
	lconf     listenConf
	ls        *listeners
	pushers   map[string]*pusher
	weighted  bool
	running   bool
	// standby: this node is an HA pair's standby (SetStandby): it
	// answers, but pushes nothing to the zones' primaries.
	standby   bool
	ctx       context.Context // Run's, cancelled when it returns
	cancelRun context.CancelFunc
	wg        sync.WaitGroup

	// Test hooks: inNS runs socket-creating code (listen and dial) in the
	// right network namespace; now is the clock.
	inNS func(func() error) error
	now  func() time.Time
}

// New builds a server from cfg's dns section. It opens no socket until
// Run. A config without a dns section gives a server that serves nothing.
func New(cfg *config.Config, src monitor.Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:       log,
		src:       src,
		links:     map[string]*linkState{},
		lastGood:  lastGood{},
		serials:   map[string]uint32{},
		content:   map[string]uint64{},
		seed:      maphash.MakeSeed(),
		notifyGen: map[string]*atomic.Uint64{},
		pushers:   map[string]*pusher{},
		inNS:      func(f func() error) error { return f() },
		now:       time.Now,
	}
	keys, zones, err := s.compile(cfg)
	if err != nil {
		return nil, err
	}
	s.keys.set(keys)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(cfg, zones)
	s.rebuild()
	return s, nil
}

func (s *Server) compile(cfg *config.Config) (map[string]*tsigKey, []*zone, error) {
	keys, err := compileKeys(cfg.DNS)
	if err != nil {
		return nil, nil, err
	}
	zones, err := compile(cfg, s.ctr.name)
	if err != nil {
		return nil, nil, err
	}
	for _, z := range zones {
		for _, k := range []string{z.xfrKey, pushKey(z)} {
			if k != "" && keys[k] == nil {
				return nil, nil, fmt.Errorf("zone %s: unknown TSIG key %q", z.origin, k)
			}
		}
	}
	return keys, zones, nil
}

func pushKey(z *zone) string {
	if z.push == nil {
		return ""
	}
	return z.push.key
}

// listenConf is the socket part of the config.
type listenConf struct {
	addrs   []netip.AddrPort
	sockets int
	tcp     tcpLimits
}

func (s *Server) apply(cfg *config.Config, zones []*zone) {
	s.carryRecsChanged(zones)
	s.cfg = cfg
	s.zones = zones
	d := cfg.DNS
	if d == nil {
		d = &config.DNS{}
	}
	s.udpSize = d.UDPSize
	if s.udpSize < 512 {
		s.udpSize = config.DefaultDNSUDPSize
	}
	s.lconf = listenConf{addrs: slices.Clone(d.Listen), sockets: d.UDPSockets, tcp: tcpLimitsOf(d)}
	if s.lconf.sockets <= 0 {
		s.lconf.sockets = min(runtime.GOMAXPROCS(0), 16)
	}
	r := newRRL(d.RRL, cfg.Has("dns.rrl.slip"))
	if r != nil {
		r.evicted = &s.ctr.rrlEvicted
	}
	if s.rrl == nil || r == nil || !s.rrl.same(r) {
		s.rrl = r
	}
	s.weighted = false
	for _, z := range zones {
		for _, n := range z.names {
			if n.policy == config.DNSPolicyWeighted {
				s.weighted = true
			}
		}
	}
}

// carryRecsChanged dates the names of new zones whose configured
// addresses differ from the running ones (a reload that renumbered a
// prefix, a host6 prefix learned or lost): their TTL drops to min_ttl
// and ramps up again, as after a link change.
func (s *Server) carryRecsChanged(zones []*zone) {
	old := map[string]*dynName{}
	for _, z := range s.zones {
		for _, n := range z.names {
			old[n.name] = n
		}
	}
	now := s.now()
	for _, z := range zones {
		for _, n := range z.names {
			o := old[n.name]
			if o == nil {
				continue
			}
			n.recsChanged = o.recsChanged
			if o.recsKey != n.recsKey {
				n.recsChanged = now
				s.log.Info("dns name's addresses changed by the config", "name", n.name,
					"a", addrsOf(n.recs[famA]), "aaaa", addrsOf(n.recs[famAAAA]),
					"was_a", addrsOf(o.recs[famA]), "was_aaaa", addrsOf(o.recs[famAAAA]))
			}
		}
	}
}

// Update applies a new config. On error nothing changes: the server goes
// on with the old config.
func (s *Server) Update(cfg *config.Config) error {
	keys, zones, err := s.compile(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		d := cfg.DNS
		if d == nil {
			d = &config.DNS{}
		}
		lc := listenConf{addrs: d.Listen, sockets: d.UDPSockets, tcp: tcpLimitsOf(d)}
		if lc.sockets <= 0 {
			lc.sockets = min(runtime.GOMAXPROCS(0), 16)
		}
		if err := s.ls.reconcile(lc); err != nil {
			return err
		}
	}
	s.keys.set(keys)
	s.apply(cfg, zones)
	s.reconcilePushers()
	s.rebuild()
	s.log.Info("dns config applied", "zones", len(zones))
	return nil
}

// Run serves until ctx is cancelled. It follows the source's link events
// and rebuilds the answers on every change.
func (s *Server) Run(ctx context.Context) error {
	events, unsubscribe := s.src.Subscribe()
	defer unsubscribe()
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("dns server already running")
	}
	now := s.now()
	for _, st := range s.src.Snapshot() {
		s.applyStatus(st, now, true)
	}
	s.ctx, s.cancelRun = context.WithCancel(ctx)
	s.ls = newListeners(s)
	if err := s.ls.reconcile(s.lconf); err != nil {
		s.ls.closeAll()
		s.cancelRun()
		s.mu.Unlock()
		return err
	}
	s.running = true
	s.reconcilePushers()
	s.rebuildAll(true)
	addrs := s.ls.bound()
	s.mu.Unlock()
	s.log.Info("dns server running", "listen", addrs)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer s.stop()
	// Stop NOTIFY retries and pushers before waiting for them, whatever
	// ends the loop.
	defer s.cancelRun()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return errors.New("link event source closed")
			}
			s.mu.Lock()
			s.applyEvent(e)
			// Take every event already queued before rebuilding once.
		drain:
			for {
				select {
				case e, ok := <-events:
					if !ok {
						break drain
					}
					s.applyEvent(e)
				default:
					break drain
				}
			}
			s.rebuild()
			s.mu.Unlock()
		case <-tick.C:
			s.mu.Lock()
			if s.weighted && s.pollSpare() {
				s.rebuild()
			}
			s.mu.Unlock()
		}
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	s.running = false
	s.ls.closeAll()
	for k, p := range s.pushers {
		p.stop()
		delete(s.pushers, k)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.log.Info("dns server stopped")
}

// Addrs returns the addresses the server listens on (with the ports
// actually bound), while it runs.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ls == nil {
		return nil
	}
	return s.ls.bound()
}

func (s *Server) applyEvent(e monitor.Event) {
	t := e.Time
	if t.IsZero() {
		t = s.now()
	}
	if e.Status.Link == "" {
		e.Status.Link = e.Link
	}
	s.applyStatus(e.Status, t, false)
}

// applyStatus records a link's status. initial statuses date their change
// from Status.Since.
func (s *Server) applyStatus(st monitor.Status, t time.Time, initial bool) {
	ls := s.links[st.Link]
	if ls == nil {
		ls = &linkState{}
		s.links[st.Link] = ls
	}
	if !ls.known || relevant(ls.st, st) {
		ls.changed = t
		if initial && !st.Since.IsZero() && st.Since.Before(t) {
			ls.changed = st.Since
		}
	}
	ls.st = st
	ls.known = true
}

// pollSpare refreshes the links' spare capacity for weighted names; it
// reports whether anything changed enough to rebuild.
func (s *Server) pollSpare() bool {
	changed := false
	now := s.now()
	for _, st := range s.src.Snapshot() {
		ls := s.links[st.Link]
		if ls == nil || relevant(ls.st, st) || abs(ls.st.Spare()-st.Spare()) > 0.02 {
			changed = true
		}
		s.applyStatus(st, now, false)
	}
	return changed
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// serialGreater compares serials in RFC 1982 arithmetic.
func serialGreater(a, b uint32) bool { return a != b && int32(a-b) > 0 }

func nextSerial(old uint32, now time.Time) uint32 {
	t := uint32(now.Unix())
	if serialGreater(t, old) {
		return t
	}
	return old + 1
}

// rebuild recomputes every name's answers and swaps in a new view. It
// bumps a zone's serial when its content changed, then sends NOTIFY and
// queues a push.
func (s *Server) rebuild() { s.rebuildAll(false) }

// rebuildAll is rebuild; with start set (Run starting) every served zone
// is notified, and serial changes are not counted as bumps.
func (s *Server) rebuildAll(start bool) {
	t0 := time.Now()
	now := s.now()
	v := &view{zones: map[string]*zoneView{}, udpSize: s.udpSize, rrl: s.rrl}
	old := map[string]*zoneView{}
	if ov := s.view.Load(); ov != nil {
		for _, zv := range ov.all {
			old[zv.z.origin] = zv
		}
	}
	var lt []*linkState
	if s.cfg != nil {
		for _, l := range s.cfg.Links {
			lt = append(lt, s.links[l.Name])
		}
	}
	for _, z := range s.zones {
		zv := &zoneView{z: z, dyn: make([]dynView, len(z.names))} // one allocation for all
		for i, n := range z.names {
			d := &zv.dyn[i]
			d.n = n
			d.compute(lt, s.lastGood, now)
		}
		s.logChanges(zv, old[z.origin])
		s.setSerial(zv, now, start)
		if z.serve {
			v.zones[z.origin] = zv
		}
		v.all = append(v.all, zv)
		if p := s.pushers[z.origin]; p != nil {
			p.set(desiredOf(zv))
		}
	}
	s.view.Store(v)
	s.ctr.rebuilds.Add(1)
	s.ctr.rebuildNanos.Store(int64(time.Since(t0)))
}

// setSerial gives zv its serial: the last one, or a new one when the
// zone's content changed (then NOTIFY goes out).
func (s *Server) setSerial(zv *zoneView, now time.Time, start bool) {
	z := zv.z
	key := s.contentHash(zv)
	ser, known := s.serials[z.origin]
	changed := false
	switch {
	case !known:
		ser = uint32(now.Unix())
		if serialGreater(z.fileSer, ser) {
			ser = z.fileSer
		}
		changed = true
	case s.content[z.origin] != key:
		ser = nextSerial(ser, now)
		changed = true
		if !start && z.serve {
			s.ctr.serialBumps.Add(1)
			s.log.Info("zone serial bumped", "zone", z.origin, "serial", ser)
		}
	}
	s.serials[z.origin] = ser
	s.content[z.origin] = key
	zv.serial = ser
	soa := z.soa
	soa.Serial = ser
	zv.soa = &soa
	if (changed || start) && s.running && z.serve {
		s.notify(zv)
	}
}

// contentHash fingerprints what a zone publishes: its static records and
// every steered name's TTL and addresses.
func (s *Server) contentHash(zv *zoneView) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(zv.z.staticKey)
	h.WriteString(zv.z.namesKey)
	var b [16]byte
	for i := range zv.dyn {
		d := &zv.dyn[i]
		if d.servfail {
			h.WriteByte(1)
		}
		for f := range 2 {
			for _, a := range d.published(f) {
				b = a.As16()
				h.Write(b[:])
			}
			h.WriteByte(0xff)
		}
	}
	return h.Sum64()
}

// logEach is how many names' changes one rebuild logs one by one at
// info level; beyond it (a link carrying thousands of names went down)
// one summary is logged, and each name at debug level.
const logEach = 16

// logChanges logs the steered names whose published addresses changed
// since old, the zone's previous view (nil at the start).
func (s *Server) logChanges(zv, old *zoneView) {
	changed := 0
	var byName map[string]*dynView
	if old != nil && old.z != zv.z {
		// A reload compiled the zone anew: match names by name.
		byName = map[string]*dynView{}
		for i, n := range old.z.names {
			byName[n.name] = &old.dyn[i]
		}
	}
	for i, n := range zv.z.names {
		d := &zv.dyn[i]
		var prev *dynView
		switch {
		case byName != nil:
			prev = byName[n.name]
		case old != nil:
			prev = &old.dyn[i]
		}
		if prev == nil {
			if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.logChange(n, d, nil, slog.LevelDebug)
			}
			continue
		}
		if !sameAnswers(prev, d) {
			s.ctr.answerChanges.Add(1)
			changed++
			if changed <= logEach {
				s.logChange(n, d, prev, slog.LevelInfo)
			} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
				s.logChange(n, d, prev, slog.LevelDebug)
			}
		}
	}
	if changed > logEach {
		s.log.Info("dns answers changed", "zone", zv.z.origin, "names", changed, "logged", logEach)
	}
}

// sameAnswers reports whether two views of a name publish the same.
func sameAnswers(a, b *dynView) bool {
	if a.servfail == b.servfail && a.sets == b.sets {
		return true // the same cached answer sets
	}
	return a.servfail == b.servfail && slices.Equal(a.published(famA), b.published(famA)) &&
		slices.Equal(a.published(famAAAA), b.published(famAAAA))
}

// logChange logs a name's published addresses, with the link states
// behind the decision.
func (s *Server) logChange(n *dynName, d, prev *dynView, level slog.Level) {
	var states []string
	for _, l := range n.links {
		st := "unknown"
		if ls := s.links[l]; ls != nil && ls.known {
			st = ls.st.State.String()
			if ls.st.Admin != monitor.AdminNone {
				st += "/admin-" + ls.st.Admin.String()
			}
			if ls.st.Saturated {
				st += "/saturated"
			}
			if ls.st.HoldDown {
				st += "/hold-down"
			}
		}
		states = append(states, l+"="+st)
	}
	sort.Strings(states)
	attrs := []any{"name", n.name, "policy", n.policy, "a", d.published(famA), "aaaa", d.published(famAAAA), "links", strings.Join(states, " ")}
	if d.servfail {
		attrs = append(attrs, "servfail", true)
	}
	if d.why != "" {
		attrs = append(attrs, "why", d.why)
	}
	if prev == nil {
		s.log.Log(context.Background(), level, "dns answer", attrs...)
		return
	}
	attrs = append(attrs, "was", prev.String())
	s.log.Log(context.Background(), level, "dns answer changed", attrs...)
}

// dial opens a connection through the test hook's namespace.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := s.inNS(func() error {
		var err error
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// exchange sends m to addr and reads the answer, over UDP or TCP.
func (s *Server) exchange(ctx context.Context, network string, m *mdns.Msg, addr netip.AddrPort, timeout time.Duration) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := s.dial(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cl := &mdns.Client{Net: network, Timeout: timeout, TsigProvider: &s.keys}
	r, _, err := cl.ExchangeWithConnContext(ctx, m, &mdns.Conn{Conn: c})
	return r, err
}
