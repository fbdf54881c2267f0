package ra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/nft"
)

// Firewall sets (ipv6.firewall_sets, docs/ipv6.md): the operator's own
// nftables sets, in the operator's tables, that multihome keeps equal to
// the LAN prefixes of some links. nftables cannot reference a set of
// another table, so the operator's rules cannot use one of multihome's:
// multihome writes into theirs. It owns the elements, never the set or
// its table, and leaves the elements in place on shutdown so that the
// firewall keeps working across a restart.

// FirewallSet is one operator set and the prefixes it should hold.
type FirewallSet struct {
	Family, Table, Name string
	// Prefixes are masked, sorted and unique.
	Prefixes []netip.Prefix
}

// String names the set as nft does: "inet filter lan6".
func (s FirewallSet) String() string { return s.Family + " " + s.Table + " " + s.Name }

// FirewallSets returns what each set of ipv6.firewall_sets should hold at
// now: the known prefixes of its links, and the prefixes of those links
// retired by a renumbering until their ipv6.ra.retire period ends (hosts
// keep using the deprecated addresses for existing connections meanwhile,
// and the firewall must keep letting those through).
func FirewallSets(v *config.IPv6, ret map[netip.Prefix]retired, now time.Time) []FirewallSet {
	var out []FirewallSet
	for _, fs := range v.FirewallSets {
		s := FirewallSet{Family: fs.Family, Table: fs.Table, Name: fs.Set}
		for _, p := range v.Known() {
			if slices.Contains(fs.Links, p.Link) {
				s.Prefixes = append(s.Prefixes, p.Prefix.Masked())
			}
		}
		for p, r := range ret {
			if slices.Contains(fs.Links, r.link) && now.Before(r.until) {
				s.Prefixes = append(s.Prefixes, p.Masked())
			}
		}
		slices.SortFunc(s.Prefixes, comparePrefix)
		s.Prefixes = slices.Compact(s.Prefixes)
		out = append(out, s)
	}
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// SetScript renders the `nft -f` input that replaces the elements of
// sets: one transaction, so a firewall never sees a set half written.
func SetScript(sets []FirewallSet) string {
	var b strings.Builder
	for _, s := range sets {
		fmt.Fprintf(&b, "flush set %s\n", s)
		if len(s.Prefixes) == 0 {
			continue
		}
		ps := make([]string, len(s.Prefixes))
		for i, p := range s.Prefixes {
			ps[i] = p.String()
		}
		fmt.Fprintf(&b, "add element %s { %s }\n", s, strings.Join(ps, ", "))
	}
	return b.String()
}

// createHint is the command that creates a set multihome can fill.
func createHint(s FirewallSet) string {
	return fmt.Sprintf("nft add set %s '{ type ipv6_addr; flags interval; }'", s)
}

// errSetMissing and errSetType are the operator's mistakes readSet
// reports.
var (
	errSetMissing = errors.New("does not exist")
	errSetType    = errors.New("has the wrong type")
)

// span is an inclusive range of addresses.
type span struct{ lo, hi netip.Addr }

// prefixSpan returns the addresses of p.
func prefixSpan(p netip.Prefix) span {
	lo := p.Masked().Addr()
	b := lo.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return span{lo, netip.AddrFrom16(b)}
}

// coverage merges spans into the sorted, disjoint, non-adjacent spans
// that cover the same addresses: two listings of one set compare equal
// however nft split or merged its intervals.
func coverage(ss []span) []span {
	slices.SortFunc(ss, func(a, b span) int { return a.lo.Compare(b.lo) })
	var out []span
	for _, s := range ss {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if next := last.hi.Next(); !next.IsValid() || s.lo.Compare(next) <= 0 {
				if s.hi.Compare(last.hi) > 0 {
					last.hi = s.hi
				}
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// setListing is the part of `nft -j list set` multihome reads.
type setListing struct {
	Nftables []struct {
		Set *struct {
			Type  json.RawMessage   `json:"type"`
			Flags []string          `json:"flags"`
			Elem  []json.RawMessage `json:"elem"`
		} `json:"set"`
	} `json:"nftables"`
}

// parseSetListing returns what a set holds, from `nft -j list set`
// output, checking that it is an interval set of IPv6 addresses.
func parseSetListing(out []byte) ([]span, error) {
	var l setListing
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, fmt.Errorf("reading nft's listing: %w", err)
	}
	for _, o := range l.Nftables {
		s := o.Set
		if s == nil {
			continue
		}
		var typ string
		if json.Unmarshal(s.Type, &typ) != nil || typ != "ipv6_addr" || !slices.Contains(s.Flags, "interval") {
			flags := strings.Join(s.Flags, ",")
			if flags == "" {
				flags = "none"
			}
			return nil, fmt.Errorf("%w: type %s, flags %s; want type ipv6_addr, flags interval", errSetType, s.Type, flags)
		}
		var spans []span
		for _, e := range s.Elem {
			sp, err := parseElem(e)
			if err != nil {
				return nil, err
			}
			spans = append(spans, sp)
		}
		return coverage(spans), nil
	}
	return nil, errors.New("nft listed no set")
}

// parseElem reads one element of an ipv6_addr set: an address, a prefix,
// a range, or any of those with options ({"elem": {"val": ...}}).
func parseElem(raw json.RawMessage) (span, error) {
	var str string
	if json.Unmarshal(raw, &str) == nil {
		a, err := netip.ParseAddr(str)
		if err != nil {
			return span{}, fmt.Errorf("set element %q: %w", str, err)
		}
		return span{a, a}, nil
	}
	var e struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
		Elem  *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return span{}, fmt.Errorf("set element %s: %w", raw, err)
	}
	switch {
	case e.Prefix != nil:
		a, err := netip.ParseAddr(e.Prefix.Addr)
		if err != nil {
			return span{}, fmt.Errorf("set element %s: %w", raw, err)
		}
		p, err := a.Prefix(e.Prefix.Len)
		if err != nil {
			return span{}, fmt.Errorf("set element %s: %w", raw, err)
		}
		return prefixSpan(p), nil
	case len(e.Range) == 2:
		lo, err1 := netip.ParseAddr(e.Range[0])
		hi, err2 := netip.ParseAddr(e.Range[1])
		if err := errors.Join(err1, err2); err != nil || hi.Less(lo) {
			return span{}, fmt.Errorf("set element %s: not a range of addresses %w", raw, err)
		}
		return span{lo, hi}, nil
	case e.Elem != nil:
		return parseElem(e.Elem.Val)
	}
	return span{}, fmt.Errorf("set element %s: not an address, prefix or range", raw)
}

// readSet lists the set and returns what it holds.
func readSet(ctx context.Context, run nft.Runner, s FirewallSet) ([]span, error) {
	out, err := run(ctx, "", "-j", "list", "set", s.Family, s.Table, s.Name)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, fmt.Errorf("%w: %w", errSetMissing, err)
		}
		return nil, err
	}
	return parseSetListing(out)
}

// setSyncer keeps the firewall sets filled. Its owner (the Advertiser,
// under its mutex) calls sync; it is not safe for concurrent use.
type setSyncer struct {
	run nft.Runner
	log *slog.Logger

	applied   string    // script of the last sync that found every set right
	lastCheck time.Time // when the sets were last read
	failed    bool      // the last sync had an error: retry at the next tick

	errs    map[string]float64 // errors by set
	updates map[string]float64 // writes by set
	size    map[string]int     // prefixes wanted, by set (current config)
	lastErr map[string]string  // last error logged, by set
}

// Recheck periods: how often sets found right, and sets that failed, are
// read again (an operator reloading their ruleset empties the sets).
const (
	setRecheck      = 10 * time.Second
	setRetryBackoff = time.Second
)

// syncSets brings the firewall sets up to date (called with a.mu held):
// at every sync, and at RA ticks when due.
func (a *Advertiser) syncSets(force bool) {
	now := time.Now()
	want := FirewallSets(a.cfg.IPv6, a.retired, now)
	if len(want) == 0 {
		clear(a.sets.size)
		a.sets.applied = ""
		return
	}
	if !force && !a.sets.due(want, now) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.sets.sync(ctx, want, now)
}

func newSetSyncer(run nft.Runner, log *slog.Logger) *setSyncer {
	return &setSyncer{run: run, log: log, errs: map[string]float64{}, updates: map[string]float64{},
		size: map[string]int{}, lastErr: map[string]string{}}
}

// due reports whether a tick at now should sync want.
func (s *setSyncer) due(want []FirewallSet, now time.Time) bool {
	if len(want) == 0 {
		return false
	}
	if s.failed {
		return now.Sub(s.lastCheck) >= setRetryBackoff
	}
	return SetScript(want) != s.applied || now.Sub(s.lastCheck) >= setRecheck
}

// sync reads each set and rewrites, in one nft transaction, those that
// do not hold exactly their prefixes. A set that is missing or of the
// wrong type is logged and counted, and skipped: the others are still
// written. It never fails: the firewall sets must not stop the IPv6
// subsystem.
func (s *setSyncer) sync(ctx context.Context, want []FirewallSet, now time.Time) {
	s.lastCheck = now
	s.failed = false
	clear(s.size)
	var write []FirewallSet
	for _, fs := range want {
		id := fs.String()
		s.size[id] = len(fs.Prefixes)
		have, err := readSet(ctx, s.run, fs)
		if err != nil {
			s.fail(fs, err)
			continue
		}
		spans := make([]span, len(fs.Prefixes))
		for i, p := range fs.Prefixes {
			spans[i] = prefixSpan(p)
		}
		if slices.Equal(have, coverage(spans)) {
			s.ok(fs)
			continue
		}
		write = append(write, fs)
	}
	if len(write) > 0 {
		if _, err := s.run(ctx, SetScript(write), "-f", "-"); err != nil {
			for _, fs := range write {
				s.fail(fs, fmt.Errorf("writing its elements: %w", err))
			}
		} else {
			for _, fs := range write {
				s.updates[fs.String()]++
				s.ok(fs)
				s.log.Info("firewall set updated", "set", fs.String(), "prefixes", fs.Prefixes)
			}
		}
	}
	if !s.failed {
		s.applied = SetScript(want)
	} else {
		s.applied = ""
	}
}

func (s *setSyncer) ok(fs FirewallSet) {
	if _, was := s.lastErr[fs.String()]; was {
		s.log.Info("firewall set usable again", "set", fs.String())
		delete(s.lastErr, fs.String())
	}
}

// fail counts and logs an error of set fs: at error level when it is new,
// at debug level while it repeats at every retry.
func (s *setSyncer) fail(fs FirewallSet, err error) {
	id := fs.String()
	s.failed = true
	s.errs[id]++
	var msg string
	switch {
	case errors.Is(err, errSetMissing):
		msg = fmt.Sprintf("firewall set %s does not exist: create it with `%s`", id, createHint(fs))
	case errors.Is(err, errSetType):
		msg = fmt.Sprintf("firewall set %s %v: recreate it with `nft delete set %s` then `%s`", id, err, id, createHint(fs))
	default:
		msg = fmt.Sprintf("firewall set %s: %v", id, err)
	}
	lvl := slog.LevelError
	if s.lastErr[id] == msg {
		lvl = slog.LevelDebug
	}
	s.lastErr[id] = msg
	s.log.Log(context.Background(), lvl, msg, "set", id, "prefixes", fs.Prefixes, "err", err, "retry", "next RA tick")
}
