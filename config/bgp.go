package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// BGP configures the embedded BGP speaker that announces the site's own
// prefixes to every upstream and withdraws or prepends them on a link
// that the monitor declares down (package bgp, docs/bgp.md).
type BGP struct {
	// ASN is the site's autonomous system number.
	ASN uint32 `yaml:"asn"`
	// RouterID is the BGP identifier, an IPv4 address (default: the first
	// IPv4 neighbour's local address, else the first link's address4).
	RouterID netip.Addr `yaml:"router_id"`
	// Prefixes are the site's prefixes, announced to every neighbour of
	// the same family. Anything else is never exported.
	Prefixes []netip.Prefix `yaml:"prefixes"`
	// OnDown is what a neighbour of a down link gets: "withdraw" (default)
	// or "prepend" (announce with DownPrepend extra copies of the ASN).
	OnDown string `yaml:"on_down"`
	// DownPrepend is the number of prepends with on_down: prepend
	// (default 6).
	DownPrepend int `yaml:"down_prepend"`
	// OnDrain is what a neighbour of a drained link gets (multihome link
	// drain): "prepend" (default: announce with DownPrepend extra copies
	// of the ASN, so the ISP keeps the path as a backup) or "withdraw".
	OnDrain string `yaml:"on_drain"`
	// DegradedIsDown applies on_down to degraded links too (default:
	// a degraded link keeps its announcements).
	DegradedIsDown bool `yaml:"degraded_is_down"`
	// Damping of our own announcements (RFC 2439 style, per neighbour):
	// each time a neighbour loses them (link down) adds 1000 to a penalty
	// that halves every half_life; above suppress they stay away after the
	// link recovers, until the penalty decays below reuse.
	Damping BGPDamping `yaml:"damping"`
	// HoldTime of the sessions (default 9s; keepalive is a third of it).
	HoldTime Duration `yaml:"hold_time"`
	// ConnectRetry between attempts to open a session (default 5s).
	ConnectRetry Duration `yaml:"connect_retry"`
	// Neighbors are the upstream routers, one or more per link.
	Neighbors []BGPNeighbor `yaml:"neighbors"`
}

// BGPDamping configures flap damping of our announcements.
type BGPDamping struct {
	Disable  bool     `yaml:"disable"`
	HalfLife Duration `yaml:"half_life"` // default 5m
	Suppress int      `yaml:"suppress"`  // default 2500: a third withdrawal within about 3 minutes
	Reuse    int      `yaml:"reuse"`     // default 750
}

// BGP neighbour roles.
const (
	BGPPrimary = "primary" // announced as is
	BGPBackup  = "backup"  // announced with prepends, a last resort for inbound traffic
)

// BGP on_down actions.
const (
	BGPWithdraw = "withdraw"
	BGPPrepend  = "prepend"
)

// BGPNeighbor is one upstream router.
type BGPNeighbor struct {
	// Link is the name of the link the session runs over; the session
	// follows that link's state.
	Link string `yaml:"link"`
	// Address is the neighbour's address on the link.
	Address netip.Addr `yaml:"address"`
	// ASN is the neighbour's AS.
	ASN uint32 `yaml:"asn"`
	// LocalAddress is our address for the session (default: the link's
	// address4/address6 when set, else the kernel's choice).
	LocalAddress netip.Addr `yaml:"local_address"`
	// Port is the neighbour's TCP port (default 179).
	Port int `yaml:"port"`
	// Role is primary (default) or backup.
	Role string `yaml:"role"`
	// Prepend is how many extra copies of our ASN the announcements to
	// this neighbour carry (default 0 for primary, 3 for backup).
	Prepend *int `yaml:"prepend"`
	// Communities are added to the announcements to this neighbour, each
	// "ASN:VALUE" (16 bits each) or one of no-export, no-advertise,
	// blackhole... as GoBGP names them.
	Communities []string `yaml:"communities"`
	// Passive waits for the neighbour to connect instead of dialling.
	Passive bool `yaml:"passive"`
	// Password enables TCP MD5 signatures (RFC 2385) on the session;
	// or PasswordFile names a file holding it (relative to the config
	// file's directory; one line). Neither is ever logged.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// passwordFromFile is PasswordFile's content, read by the check.
	passwordFromFile string
	// TTLSecurity is GTSM (RFC 5082): send with TTL 255 and accept only
	// packets that arrive with TTL 255 (the neighbour is one hop away).
	TTLSecurity bool `yaml:"ttl_security"`
	// HoldTime and ConnectRetry override bgp.hold_time and
	// bgp.connect_retry for this neighbour (e.g. an ISP that insists on
	// 180s); same limits.
	HoldTime     Duration `yaml:"hold_time"`
	ConnectRetry Duration `yaml:"connect_retry"`
	// BFD runs multihome's own BFD session to the neighbour over the link.
	BFD *BFD `yaml:"bfd"`
	// Import is what of the neighbour's routes is installed into its
	// link's routing table (docs/bgp.md, "Importing routes"): "none"
	// (default), "default" (only 0.0.0.0/0 or ::/0) or "full" (every
	// route of the neighbour's family). Imported routes are never
	// exported to any neighbour.
	Import string `yaml:"import"`
	// ImportPrefixes, with import: full, is a prefix list: only the routes
	// one of its entries matches are imported. An entry is exact by
	// default ("203.0.113.0/24" takes that route only); "le N", "ge N" or
	// "orlonger" take more specifics (PrefixFilter).
	ImportPrefixes []PrefixFilter `yaml:"import_prefixes"`
	// MaxPrefixes caps the routes imported from the neighbour (0: no
	// limit). Over it an error is logged and no further route is
	// installed; the session stays up.
	MaxPrefixes int `yaml:"max_prefixes"`
	// RequireDefault, with import default or full: while the session is
	// established and the neighbour sends no default route, its link is
	// reported down to the link monitor.
	RequireDefault bool `yaml:"require_default"`
}

// BGP import modes.
const (
	BGPImportNone    = "none"
	BGPImportDefault = "default"
	BGPImportFull    = "full"
)

// Imports reports whether routes are imported from the neighbour.
func (n *BGPNeighbor) Imports() bool {
	return n.Import == BGPImportDefault || n.Import == BGPImportFull
}

// BFD configures one asynchronous single-hop BFD session (RFC 5880/5881).
type BFD struct {
	// MinTx is the desired minimum transmit interval (default 300ms).
	MinTx Duration `yaml:"min_tx"`
	// MinRx is the required minimum receive interval (default 300ms).
	MinRx Duration `yaml:"min_rx"`
	// Multiplier is the detection multiplier (default 3).
	Multiplier int `yaml:"multiplier"`
	// HoldUp: as links[].bfd.hold_up; a shorter-lived session's down
	// neither withdraws nor resets BGP (default 5s, 0 disables).
	HoldUp *Duration `yaml:"hold_up"`
}

// SameSession reports whether a and b (either may be nil) give the same
// BFD session: everything but the hold-up, which applies live.
func SameSession(a, b *BFD) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.MinTx == b.MinTx && a.MinRx == b.MinRx && a.Multiplier == b.Multiplier
}

// BGP defaults.
const (
	DefaultBGPHoldTime     = 9 * time.Second
	DefaultBGPConnectRetry = 5 * time.Second
	DefaultBGPDownPrepend  = 6
	DefaultBGPBackupPrep   = 3
	DefaultBFDInterval     = 300 * time.Millisecond
	DefaultBFDMultiplier   = 3
)

func init() { sectionChecks = append(sectionChecks, checkBGP) }

// ParseCommunity parses "ASN:VALUE" into a 32-bit standard community.
func ParseCommunity(s string) (uint32, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want ASN:VALUE", s)
	}
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: want two numbers 0..65535", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// EffectivePrepend is the number of prepends on a working link.
func (n *BGPNeighbor) EffectivePrepend() int {
	if n.Prepend != nil {
		return *n.Prepend
	}
	if n.Role == BGPBackup {
		return DefaultBGPBackupPrep
	}
	return 0
}

// checkBGP fills in the bgp section's defaults and validates it, one
// sub-section at a time; a field that could not be decoded is reported
// once, by the decoder, and checks that depend on it stay quiet.
func checkBGP(c *Config, k *checker) {
	b := c.BGP
	if b == nil {
		return
	}
	if b.ASN == 0 || b.ASN == 23456 {
		k.errorf("bgp.asn", "missing or reserved AS number %d", b.ASN)
	}
	checkBGPPrefixes(k, b)
	checkBGPActions(k, b)
	if len(b.Neighbors) == 0 {
		k.errorf("bgp.neighbors", "missing: give at least one upstream")
	}
	for i := range b.Neighbors {
		checkBGPNeighbor(c, k, i)
	}
	checkBGPRouterID(c, k)
	checkSharedBFD(c, k)
}

// undecodedUnder reports whether a field at or under path could not be
// decoded.
func (k *checker) undecodedUnder(path string) bool {
	for _, u := range k.undecoded {
		if related(u, path) {
			return true
		}
	}
	return false
}

// checkBGPPrefixes validates the site's prefixes.
func checkBGPPrefixes(k *checker, b *BGP) {
	if len(b.Prefixes) == 0 && !k.undecodedUnder("bgp.prefixes") {
		k.errorf("bgp.prefixes", "missing: give the site's prefixes to announce")
	}
	for i, p := range b.Prefixes {
		path := fmt.Sprintf("bgp.prefixes[%d]", i)
		if !p.IsValid() {
			continue // not decoded: reported already
		}
		if p != p.Masked() {
			k.errorf(path, "%s has host bits set: did you mean %s?", p, p.Masked())
		}
		for j := range i {
			if b.Prefixes[j] == p {
				k.errorf(path, "duplicate prefix %s", p)
			}
		}
	}
}

// checkBGPActions validates what a down link does to its announcements
// (on_down, down_prepend, damping) and the session timers.
func checkBGPActions(k *checker, b *BGP) {
	oneOf(k, "bgp.on_down", &b.OnDown, BGPWithdraw, BGPWithdraw, BGPPrepend)
	oneOf(k, "bgp.on_drain", &b.OnDrain, BGPPrepend, BGPWithdraw, BGPPrepend)
	if b.DownPrepend == 0 {
		b.DownPrepend = DefaultBGPDownPrepend
	}
	if b.DownPrepend < 0 || b.DownPrepend > 20 {
		k.errorf("bgp.down_prepend", "must be 1..20, got %d", b.DownPrepend)
	}
	defDur(&b.Damping.HalfLife, 5*time.Minute)
	if b.Damping.Suppress == 0 {
		b.Damping.Suppress = 2500
	}
	if b.Damping.Reuse == 0 {
		b.Damping.Reuse = 750
	}
	if b.Damping.Reuse >= b.Damping.Suppress || b.Damping.Reuse < 1 {
		k.errorf("bgp.damping.reuse", "must be 1..suppress-1 (%d), got %d", b.Damping.Suppress, b.Damping.Reuse)
	}
	defDur(&b.HoldTime, DefaultBGPHoldTime)
	checkHoldTime(k, "bgp.hold_time", b.HoldTime)
	defDur(&b.ConnectRetry, DefaultBGPConnectRetry)
	checkConnectRetry(k, "bgp.connect_retry", b.ConnectRetry)
}

func checkHoldTime(k *checker, path string, d Duration) {
	if h := d.D(); h < 3*time.Second || h > 65535*time.Second || h%time.Second != 0 {
		k.errorf(path, "must be whole seconds, 3s..65535s, got %v", h)
	}
}

func checkConnectRetry(k *checker, path string, d Duration) {
	if r := d.D(); r < time.Second || r%time.Second != 0 {
		k.errorf(path, "must be whole seconds, at least 1s, got %v", r)
	}
}

// checkBGPNeighbor validates neighbour i: its session, what it is sent,
// its password, its BFD and its import settings.
func checkBGPNeighbor(c *Config, k *checker, i int) {
	b := c.BGP
	n := &b.Neighbors[i]
	p := fmt.Sprintf("bgp.neighbors[%d]", i)
	checkBGPSession(c, k, p, i, n)
	checkBGPExport(k, p, b, n)
	checkBGPPassword(c, k, p, n)
	if f := n.BFD; f != nil {
		defDur(&f.MinTx, DefaultBFDInterval)
		defDur(&f.MinRx, DefaultBFDInterval)
		if f.Multiplier == 0 {
			f.Multiplier = DefaultBFDMultiplier
		}
		if f.Multiplier < 1 || f.Multiplier > 255 {
			k.errorf(p+".bfd.multiplier", "must be 1..255, got %d", f.Multiplier)
		}
		if f.MinTx.D() < time.Millisecond || f.MinRx.D() < time.Millisecond {
			k.errorf(p+".bfd", "intervals must be at least 1ms")
		}
		checkHoldUp(k, p+".bfd.hold_up", &f.HoldUp)
	}
	checkBGPImport(k, p, n)
}

// checkBGPSession validates how neighbour n (index i, at path p) is
// reached: link, address, AS, port, timers and local address.
func checkBGPSession(c *Config, k *checker, p string, i int, n *BGPNeighbor) {
	b := c.BGP
	l := c.LinkByName(n.Link)
	if l == nil && !k.undecodedUnder(p+".link") {
		k.errorf(p+".link", "unknown link %q", n.Link)
	}
	if !n.Address.IsValid() {
		k.errorf(p+".address", "missing neighbour address")
	}
	for j := range i {
		if b.Neighbors[j].Address == n.Address && n.Address.IsValid() {
			k.errorf(p+".address", "duplicate neighbour %s", n.Address)
		}
	}
	if n.ASN == 0 || n.ASN == 23456 {
		k.errorf(p+".asn", "missing or reserved AS number %d", n.ASN)
	}
	if n.ASN == b.ASN && n.ASN != 0 {
		k.errorf(p+".asn", "iBGP is not supported: the neighbour's AS must differ from bgp.asn")
	}
	if n.Port == 0 {
		n.Port = 179
	}
	if n.Port < 1 || n.Port > 65535 {
		k.errorf(p+".port", "must be 1..65535, got %d", n.Port)
	}
	defDur(&n.HoldTime, b.HoldTime.D())
	checkHoldTime(k, p+".hold_time", n.HoldTime)
	defDur(&n.ConnectRetry, b.ConnectRetry.D())
	checkConnectRetry(k, p+".connect_retry", n.ConnectRetry)
	if !n.LocalAddress.IsValid() && l != nil && n.Address.IsValid() {
		if n.Address.Is4() {
			n.LocalAddress = l.Address4
		} else {
			n.LocalAddress = l.Address6
		}
	}
	if n.LocalAddress.IsValid() && n.Address.IsValid() && n.LocalAddress.Is4() != n.Address.Is4() {
		k.errorf(p+".local_address", "%s is not of the neighbour's family", n.LocalAddress)
	}
}

// checkBGPExport validates what neighbour n (at path p) is sent: role,
// prepends, communities, and that some prefix is of its family.
func checkBGPExport(k *checker, p string, b *BGP, n *BGPNeighbor) {
	oneOf(k, p+".role", &n.Role, BGPPrimary, BGPPrimary, BGPBackup)
	if n.Prepend != nil && (*n.Prepend < 0 || *n.Prepend > 20) {
		k.errorf(p+".prepend", "must be 0..20, got %d", *n.Prepend)
	}
	for j, s := range n.Communities {
		if _, err := ParseCommunity(s); err != nil {
			k.errorf(fmt.Sprintf("%s.communities[%d]", p, j), "%v", err)
		}
	}
	fam := false
	for _, pr := range b.Prefixes {
		fam = fam || pr.IsValid() && pr.Addr().Is4() == n.Address.Is4()
	}
	// With a prefix that could not be decoded, the family may be the
	// one it was meant to have: the decoder's error is the one to fix.
	if !fam && n.Address.IsValid() && len(b.Prefixes) > 0 && !k.undecodedUnder("bgp.prefixes") {
		k.errorf(p+".address", "no prefix of the neighbour's family to announce")
	}
}

// maxMD5Key is the longest TCP MD5 key Linux accepts
// (TCP_MD5SIG_MAXKEYLEN).
const maxMD5Key = 80

// checkBGPPassword validates neighbour n's TCP MD5 password: inline or
// in password_file (relative to the config file's directory), whose
// content is read now so that a missing or empty file is refused before
// anything runs. The password itself is never in a message.
func checkBGPPassword(c *Config, k *checker, p string, n *BGPNeighbor) {
	n.passwordFromFile = ""
	if n.PasswordFile == "" {
		if len(n.Password) > maxMD5Key {
			k.errorf(p+".password", "is %d bytes long: TCP MD5 keys are at most %d", len(n.Password), maxMD5Key)
		}
		return
	}
	if n.Password != "" {
		k.errorf(p+".password_file", "give password or password_file, not both")
		return
	}
	if !filepath.IsAbs(n.PasswordFile) && c.File != "" {
		n.PasswordFile = filepath.Join(filepath.Dir(c.File), n.PasswordFile)
	}
	b, err := os.ReadFile(n.PasswordFile)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		k.errorf(p+".password_file", "cannot read %s: %s", n.PasswordFile, msg)
		return
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		k.errorf(p+".password_file", "%s is empty", n.PasswordFile)
	case strings.ContainsAny(pw, "\r\n"):
		k.errorf(p+".password_file", "%s holds more than one line: write the password alone on one line", n.PasswordFile)
	case len(pw) > maxMD5Key:
		k.errorf(p+".password_file", "the password in %s is %d bytes long: TCP MD5 keys are at most %d", n.PasswordFile, len(pw), maxMD5Key)
	default:
		n.passwordFromFile = pw
	}
}

// MD5Password is the neighbour's TCP MD5 password (RFC 2385): password,
// or the content of password_file as read when the config was checked;
// empty for none.
func (n *BGPNeighbor) MD5Password() string {
	if n.PasswordFile != "" {
		return n.passwordFromFile
	}
	return n.Password
}

// checkBGPRouterID fills in bgp.router_id (the first IPv4 local address
// of a neighbour, else the first link's address4) and validates it.
func checkBGPRouterID(c *Config, k *checker) {
	b := c.BGP
	if !b.RouterID.IsValid() {
		for _, n := range b.Neighbors {
			if n.LocalAddress.Is4() {
				b.RouterID = n.LocalAddress
				break
			}
		}
	}
	if !b.RouterID.IsValid() {
		for _, l := range c.Links {
			if l.Address4.IsValid() {
				b.RouterID = l.Address4
				break
			}
		}
	}
	switch {
	case k.undecodedUnder("bgp.router_id"):
	case !b.RouterID.IsValid():
		k.errorf("bgp.router_id", "missing: no IPv4 address to take it from, give one")
	case !b.RouterID.Is4():
		k.errorf("bgp.router_id", "must be an IPv4 address, got %s", b.RouterID)
	}
}

// checkBGPImport validates the import settings of neighbour n (at path p).
func checkBGPImport(k *checker, p string, n *BGPNeighbor) {
	oneOf(k, p+".import", &n.Import, BGPImportNone, BGPImportNone, BGPImportDefault, BGPImportFull)
	if len(n.ImportPrefixes) > 0 && n.Import != BGPImportFull {
		k.errorf(p+".import_prefixes", "filters a full import: needs import: full (import is %s)", n.Import)
	}
	for j, f := range n.ImportPrefixes {
		path := fmt.Sprintf("%s.import_prefixes[%d]", p, j)
		if !f.Prefix.IsValid() {
			continue // not decoded: reported already
		}
		if n.Address.IsValid() && f.Prefix.Addr().Is4() != n.Address.Is4() {
			k.errorf(path, "%s is not of the neighbour's family: it would match nothing", f.Prefix)
		}
		for i := range j {
			if n.ImportPrefixes[i] == f {
				k.errorf(path, "duplicate entry %s", f)
			}
		}
	}
	if n.MaxPrefixes < 0 {
		k.errorf(p+".max_prefixes", "must be 0 (no limit) or more, got %d", n.MaxPrefixes)
	} else if n.MaxPrefixes > 0 && !n.Imports() {
		k.errorf(p+".max_prefixes", "limits imported routes: needs import: default or full (import is %s)", n.Import)
	}
	if n.RequireDefault && !n.Imports() {
		k.errorf(p+".require_default", "needs import: default or full (import is %s)", n.Import)
	}
}

// LongPrefixes returns the prefixes longer than most networks accept
// (IPv4 /24, IPv6 /48): announcements that are likely filtered.
func (b *BGP) LongPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range b.Prefixes {
		if p.Addr().Is4() && p.Bits() > 24 || !p.Addr().Is4() && p.Bits() > 48 {
			out = append(out, p)
		}
	}
	return out
}
