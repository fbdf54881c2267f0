package lab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multihome/multihome/netns"
	"github.com/vishvananda/netlink"
	"sigs.k8s.io/knftables"
)

// FaultKind names a way to break an ISP.
type FaultKind string

// Fault kinds. All are applied inside the ISP router's namespace and are
// visible in the kernel there, so any process can read them back.
const (
	// CarrierDown sets the ISP router's gateway-facing veth down: the
	// gateway's wanK loses carrier.
	CarrierDown FaultKind = "carrier-down"
	// Blackhole drops everything the ISP router would forward, both
	// directions (nftables); the router itself still answers on its own
	// addresses, so the link looks alive.
	Blackhole FaultKind = "blackhole"
	// Loss drops each forwarded packet with probability LossPercent, in
	// each direction (nftables numgen): a round trip is lost with
	// probability 1-(1-p)².
	Loss FaultKind = "loss"
	// RateLimit shapes the ISP router's egress toward the gateway
	// (download) and toward the core (upload) to Rate with a tbf qdisc.
	RateLimit FaultKind = "rate-limit"
)

// FaultKinds lists the kinds in the order Faults reports them.
var FaultKinds = []FaultKind{CarrierDown, Blackhole, Loss, RateLimit}

// Fault describes one fault of an ISP.
type Fault struct {
	Kind        FaultKind `json:"kind"`
	LossPercent int       `json:"loss_percent,omitempty"` // Loss: 1..100
	Rate        string    `json:"rate,omitempty"`         // RateLimit: "5Mbit", "500kbit", ...
}

// String renders f as ParseFault reads it: "carrier-down", "blackhole",
// "loss=50", "rate=5Mbit".
func (f Fault) String() string {
	switch f.Kind {
	case Loss:
		return fmt.Sprintf("loss=%d", f.LossPercent)
	case RateLimit:
		return "rate=" + f.Rate
	}
	return string(f.Kind)
}

// ParseFault reads "carrier-down", "blackhole", "loss=N" (percent) or
// "rate=RATE" (as for tc: "5Mbit", "500kbit", "1mbps").
func ParseFault(s string) (Fault, error) {
	key, val, hasVal := strings.Cut(strings.TrimSpace(s), "=")
	var f Fault
	switch strings.ToLower(key) {
	case string(CarrierDown), string(Blackhole):
		if hasVal {
			return f, fmt.Errorf("fault %q takes no value", key)
		}
		f.Kind = FaultKind(strings.ToLower(key))
	case string(Loss):
		n, err := strconv.Atoi(val)
		if err != nil {
			return f, fmt.Errorf("fault %q: want loss=PERCENT", s)
		}
		f = Fault{Kind: Loss, LossPercent: n}
	case "rate", string(RateLimit):
		f = Fault{Kind: RateLimit, Rate: val}
	default:
		return f, fmt.Errorf("unknown fault %q: want carrier-down, blackhole, loss=PERCENT or rate=RATE", s)
	}
	return f, f.validate()
}

func (f Fault) validate() error {
	switch f.Kind {
	case CarrierDown, Blackhole:
	case Loss:
		if f.LossPercent < 1 || f.LossPercent > 100 {
			return fmt.Errorf("loss %d%%: want 1..100", f.LossPercent)
		}
	case RateLimit:
		if _, err := ParseRate(f.Rate); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	return nil
}

// ParseRate reads a rate as tc does and returns bytes per second: a number
// with a unit "bit" (or none), "kbit", "mbit", "gbit", "tbit" (bits per
// second, powers of 1000) or "bps", "kbps", "mbps", "gbps", "tbps" (bytes
// per second). Units are case-insensitive. The result is at least 125 B/s
// (1kbit).
func ParseRate(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], t[i:]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("rate %q: want a number and a unit such as 5Mbit", s)
	}
	mult := map[string]float64{
		"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("rate %q: unknown unit %q", s, unit)
	}
	bytes := v * mult / 8
	if bytes < 125 || bytes > math.MaxUint32*8 {
		return 0, fmt.Errorf("rate %q out of range 1kbit..", s)
	}
	return uint64(math.Round(bytes)), nil
}

// FormatRate renders bytes per second in the largest exact bit unit:
// 250000 → "2Mbit".
func FormatRate(bytesPerSec uint64) string {
	bits := bytesPerSec * 8
	for _, u := range []struct {
		div  uint64
		name string
	}{{1e12, "Tbit"}, {1e9, "Gbit"}, {1e6, "Mbit"}, {1e3, "kbit"}} {
		if bits >= u.div && bits%u.div == 0 {
			return fmt.Sprintf("%d%s", bits/u.div, u.name)
		}
	}
	return fmt.Sprintf("%dbit", bits)
}

// ActiveFault is a fault read back from the kernel.
type ActiveFault struct {
	ISP   string    `json:"isp"`
	Fault Fault     `json:"fault"`
	Since time.Time `json:"since"` // when it was applied; zero if unknown
}

func (a ActiveFault) String() string {
	s := a.ISP + " " + a.Fault.String()
	if !a.Since.IsZero() {
		s += " since " + a.Since.Format(time.RFC3339Nano)
	}
	return s
}

// The nftables table that holds Blackhole and Loss in an ISP namespace.
const (
	faultTable = "multihome_lab"
	faultChain = "faults"
)

// Fault applies f to the ISP named isp ("isp1"), replacing a fault of the
// same kind; faults of other kinds stay. It returns the moment the kernel
// change was complete, from which a benchmark measures detection time.
func (l *Lab) Fault(isp string, f Fault) (time.Time, error) {
	if err := f.validate(); err != nil {
		return time.Time{}, err
	}
	info, err := l.ISP(isp)
	if err != nil {
		return time.Time{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshSince()
	if err := l.apply(info, f); err != nil {
		return time.Time{}, fmt.Errorf("lab %s: fault %s %s: %w", l.Name, isp, f, err)
	}
	at := time.Now()
	if l.since[isp] == nil {
		l.since[isp] = map[FaultKind]time.Time{}
	}
	l.since[isp][f.Kind] = at
	l.log.Info("fault applied", "isp", isp, "fault", f.String())
	l.saveFaults()
	return at, nil
}

func (l *Lab) apply(isp ISP, f Fault) error {
	switch f.Kind {
	case CarrierDown:
		return withLink(isp, ISPDownIface, func(h *netlink.Handle, link netlink.Link) error {
			return h.LinkSetDown(link)
		})
	case Blackhole, Loss:
		bh, loss, err := readNft(isp.NS)
		if err != nil {
			return err
		}
		if f.Kind == Blackhole {
			bh = true
		} else {
			loss = f.LossPercent
		}
		return writeNft(isp.NS, bh, loss)
	case RateLimit:
		rate, err := ParseRate(f.Rate)
		if err != nil {
			return err
		}
		for _, iface := range []string{ISPDownIface, ISPUpIface} {
			err := withLink(isp, iface, func(h *netlink.Handle, link netlink.Link) error {
				return h.QdiscReplace(tbf(link, rate))
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// tbf shapes to rate (bytes/s) with a burst of 20 ms (at least 16 full
// frames) and 100 ms of queue.
func tbf(link netlink.Link, rate uint64) *netlink.Tbf {
	burst := max(rate/50, 16*1514)
	limit := burst + rate/10
	return &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(1, 0),
			Parent:    netlink.HANDLE_ROOT,
		},
		Rate:   rate,
		Limit:  uint32(min(limit, math.MaxUint32)),
		Buffer: netlink.Xmittime(rate, uint32(min(burst, math.MaxUint32))),
	}
}

// Restore removes the given kinds of fault from the ISP (all kinds when
// none are given). Removing a fault that is not there is not an error.
func (l *Lab) Restore(isp string, kinds ...FaultKind) error {
	info, err := l.ISP(isp)
	if err != nil {
		return err
	}
	if len(kinds) == 0 {
		kinds = FaultKinds
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshSince()
	active, err := l.readFaults(info)
	if err != nil {
		return err
	}
	var errs []error
	nftChanged := false
	bh, loss := false, 0
	for _, f := range active {
		if !slices.Contains(kinds, f.Kind) {
			if f.Kind == Blackhole {
				bh = true
			} else if f.Kind == Loss {
				loss = f.LossPercent
			}
			continue
		}
		switch f.Kind {
		case CarrierDown:
			b, err := l.newBuilder(info.Name)
			if err == nil {
				err = b.repairISP(info)
				b.close()
			}
			errs = append(errs, err)
		case Blackhole, Loss:
			nftChanged = true
		case RateLimit:
			for _, iface := range []string{ISPDownIface, ISPUpIface} {
				errs = append(errs, withLink(info, iface, func(h *netlink.Handle, link netlink.Link) error {
					return deleteRootTbf(h, link)
				}))
			}
		}
		if l.since[isp] != nil {
			delete(l.since[isp], f.Kind)
		}
		l.log.Info("fault restored", "isp", isp, "fault", f.String())
	}
	if nftChanged {
		errs = append(errs, writeNft(info.NS, bh, loss))
	}
	l.saveFaults()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: restore %s: %w", l.Name, isp, err)
	}
	return nil
}

// RestoreAll removes every fault of every ISP.
func (l *Lab) RestoreAll() error {
	var errs []error
	for _, isp := range l.ISPs {
		errs = append(errs, l.Restore(isp.Name))
	}
	return errors.Join(errs...)
}

// Faults reads the active faults of every ISP back from the kernel: link
// state, the nftables fault table and tbf qdiscs in the ISP namespaces.
func (l *Lab) Faults() ([]ActiveFault, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshSince()
	var out []ActiveFault
	for _, isp := range l.ISPs {
		faults, err := l.readFaults(isp)
		if err != nil {
			return out, err
		}
		for _, f := range faults {
			out = append(out, ActiveFault{ISP: isp.Name, Fault: f, Since: l.since[isp.Name][f.Kind]})
		}
	}
	return out, nil
}

// readFaults returns the faults of one ISP as the kernel shows them, in
// FaultKinds order.
func (l *Lab) readFaults(isp ISP) ([]Fault, error) {
	var out []Fault
	var rate uint64
	err := withLink(isp, ISPDownIface, func(h *netlink.Handle, link netlink.Link) error {
		if link.Attrs().Flags&net.FlagUp == 0 {
			out = append(out, Fault{Kind: CarrierDown})
		}
		qdiscs, err := h.QdiscList(link)
		if err != nil {
			return fmt.Errorf("list qdiscs: %w", err)
		}
		for _, q := range qdiscs {
			if t, ok := q.(*netlink.Tbf); ok && t.Parent == netlink.HANDLE_ROOT {
				rate = t.Rate
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	bh, loss, err := readNft(isp.NS)
	if err != nil {
		return nil, err
	}
	if bh {
		out = append(out, Fault{Kind: Blackhole})
	}
	if loss > 0 {
		out = append(out, Fault{Kind: Loss, LossPercent: loss})
	}
	if rate > 0 {
		out = append(out, Fault{Kind: RateLimit, Rate: FormatRate(rate)})
	}
	return out, nil
}

func withLink(isp ISP, iface string, fn func(*netlink.Handle, netlink.Link) error) error {
	h, err := netns.Handle(isp.NS)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", isp.NS, iface, err)
	}
	return fn(h, link)
}

func deleteRootTbf(h *netlink.Handle, link netlink.Link) error {
	qdiscs, err := h.QdiscList(link)
	if err != nil {
		return err
	}
	for _, q := range qdiscs {
		if t, ok := q.(*netlink.Tbf); ok && t.Parent == netlink.HANDLE_ROOT {
			if err := h.QdiscDel(t); err != nil {
				return fmt.Errorf("delete tbf on %s: %w", link.Attrs().Name, err)
			}
		}
	}
	return nil
}

// nftIn runs fn with a knftables interface for the fault table, inside
// the namespace: the nft processes fork from the namespace's thread.
func nftIn(ns string, fn func(knftables.Interface) error) error {
	return netns.Do(ns, func() error {
		nft, err := knftables.New(knftables.InetFamily, faultTable)
		if err != nil {
			return err
		}
		return fn(nft)
	})
}

// renderNft returns the transaction that makes the fault table hold
// exactly the given faults (no table when there are none).
func renderNft(tx *knftables.Transaction, blackhole bool, loss int) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	if !blackhole && loss == 0 {
		return
	}
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("multihome lab faults")})
	tx.Add(&knftables.Chain{
		Name:     faultChain,
		Type:     knftables.PtrTo(knftables.FilterType),
		Hook:     knftables.PtrTo(knftables.ForwardHook),
		Priority: knftables.PtrTo(knftables.FilterPriority),
	})
	if blackhole {
		tx.Add(&knftables.Rule{Chain: faultChain, Rule: "counter drop", Comment: knftables.PtrTo("blackhole")})
	}
	if loss > 0 {
		tx.Add(&knftables.Rule{
			Chain:   faultChain,
			Rule:    fmt.Sprintf("numgen random mod 100 < %d counter drop", loss),
			Comment: knftables.PtrTo(fmt.Sprintf("loss=%d", loss)),
		})
	}
}

func writeNft(ns string, blackhole bool, loss int) error {
	return nftIn(ns, func(nft knftables.Interface) error {
		tx := nft.NewTransaction()
		renderNft(tx, blackhole, loss)
		if err := nft.Run(context.Background(), tx); err != nil {
			return fmt.Errorf("nft in %s: %w", ns, err)
		}
		return nil
	})
}

// readNft reads the Blackhole and Loss faults from the rule comments of
// the fault table.
func readNft(ns string) (blackhole bool, loss int, err error) {
	err = nftIn(ns, func(nft knftables.Interface) error {
		rules, err := nft.ListRules(context.Background(), faultChain)
		if knftables.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("nft in %s: %w", ns, err)
		}
		for _, r := range rules {
			if r.Comment == nil {
				continue
			}
			c := *r.Comment
			if c == "blackhole" {
				blackhole = true
			} else if v, ok := strings.CutPrefix(c, "loss="); ok {
				loss, _ = strconv.Atoi(v)
			}
		}
		return nil
	})
	return blackhole, loss, err
}
