package config

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// DNS configures the authoritative DNS server that answers with the
// addresses of healthy links (package dns, docs/dns.md).
type DNS struct {
	// Listen are the addresses served over UDP and TCP, e.g.
	// "198.51.100.2:53", "[2001:db8:1::2]:53" or "0.0.0.0:53". Wildcard
	// addresses answer from the address each query was sent to.
	Listen []netip.AddrPort `yaml:"listen"`
	// UDPSockets is the number of SO_REUSEPORT UDP sockets per listen
	// address (default: the number of CPUs, at most 16).
	UDPSockets int `yaml:"udp_sockets"`
	// UDPSize is the largest UDP response sent to an EDNS client, and the
	// buffer size we advertise (default 1232).
	UDPSize int `yaml:"udp_size"`
	// TCPIdle closes TCP connections idle that long (default 10s).
	TCPIdle Duration `yaml:"tcp_idle"`
	// TCPReadTimeout closes a TCP connection whose client began a message
	// and did not finish it within that time (default 2s).
	TCPReadTimeout Duration `yaml:"tcp_read_timeout"`
	// TCPMaxConnections caps the open TCP connections (default 256);
	// TCPMaxPerClient caps them per client prefix, with the prefix
	// lengths of rrl (default 16). Connections over a cap are closed at
	// once.
	TCPMaxConnections int `yaml:"tcp_max_connections"`
	TCPMaxPerClient   int `yaml:"tcp_max_per_client"`
	// TCPMaxQueries closes a TCP connection after that many queries
	// (default 100).
	TCPMaxQueries int `yaml:"tcp_max_queries"`
	// RRL is response rate limiting against reflection attacks (UDP only).
	RRL DNSRRL `yaml:"rrl"`
	// Keys are TSIG keys, referred to by name from transfer and push.
	Keys []DNSKey `yaml:"keys"`
	// Zones are the zones served and/or pushed.
	Zones []DNSZone `yaml:"zones"`
}

// DNSRRL configures response rate limiting: one token bucket per client
// prefix (/24 for IPv4, /56 for IPv6 by default).
type DNSRRL struct {
	// Disable turns rate limiting off.
	Disable bool `yaml:"disable"`
	// Rate is the responses per second allowed per client prefix
	// (default 50).
	Rate int `yaml:"rate"`
	// Burst is the bucket size (default 2 × rate).
	Burst int `yaml:"burst"`
	// Slip: every slip-th limited response is sent truncated (TC=1, empty)
	// so that real clients retry over TCP; the others are dropped.
	// Default 2; 1 truncates all, 0 drops all.
	Slip int `yaml:"slip"`
	// IPv4Prefix and IPv6Prefix are the client prefix lengths that share a
	// bucket (default 24 and 56).
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// Exempt clients are never limited (e.g. the secondaries, monitoring).
	Exempt []netip.Prefix `yaml:"exempt"`
}

// DNSKey is a TSIG key.
type DNSKey struct {
	// Name of the key, a domain name such as "multihome-update." (made
	// fully qualified).
	Name string `yaml:"name"`
	// Algorithm: hmac-sha256 (default), hmac-sha224, hmac-sha384,
	// hmac-sha512 or hmac-sha1.
	Algorithm string `yaml:"algorithm"`
	// Secret is the base64 key; or SecretFile names a file holding it.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// DNS zone modes.
const (
	DNSModeServe = "serve" // answer queries (default without push)
	DNSModePush  = "push"  // only keep an external primary in sync
	DNSModeBoth  = "both"  // both (default with push)
)

// DNSZone is one zone.
type DNSZone struct {
	// Name is the zone's apex, e.g. "example.com" (made fully qualified
	// and lower case).
	Name string `yaml:"name"`
	// Mode is serve, push or both (default serve, or both with push).
	Mode string `yaml:"mode"`
	// TTL for static records written without one (default 1h).
	TTL Duration `yaml:"ttl"`
	// File is a standard zone file (RFC 1035 syntax) with the static part
	// of the zone; relative to the config file's directory.
	File string `yaml:"file"`
	// Records are static records in zone file syntax, names relative to
	// the zone: "@ NS ns1", "@ MX 10 mail", "mail A 198.51.100.25".
	Records []string `yaml:"records"`
	// SOA fields used when neither File nor Records give a SOA. The serial
	// is always multihome's: it is bumped on every change.
	SOA DNSSOA `yaml:"soa"`
	// Names are the health-steered names.
	Names []DNSName `yaml:"names"`
	// Transfer configures zone transfers to secondaries and NOTIFY.
	Transfer DNSTransfer `yaml:"transfer"`
	// Push keeps the names' records at an external primary in sync by
	// RFC 2136 dynamic updates.
	Push *DNSPush `yaml:"push"`
}

// DNSSOA holds the SOA fields other than the serial.
type DNSSOA struct {
	MName   string   `yaml:"mname"`   // default: first NS target, or ns.<zone>
	RName   string   `yaml:"rname"`   // default hostmaster.<zone>
	TTL     Duration `yaml:"ttl"`     // default 1h
	Refresh Duration `yaml:"refresh"` // default 1h
	Retry   Duration `yaml:"retry"`   // default 10m
	Expire  Duration `yaml:"expire"`  // default 1w
	// Minimum is the negative-caching TTL (default 30s).
	Minimum Duration `yaml:"minimum"`
}

// DNS answer policies.
const (
	DNSPolicyAll      = "all"      // every healthy address, rotated
	DNSPolicyWeighted = "weighted" // count addresses drawn by weight × spare capacity
	DNSPolicyFailover = "failover" // the healthy links of the best priority
	DNSPolicyFirst    = "first"    // the first count healthy, by priority
)

// What a name does with degraded or saturated links.
const (
	DNSKeep   = "keep"   // treat like healthy links
	DNSDemote = "demote" // use only when no better link is left
	DNSRemove = "remove" // never use
)

// What a name answers when none of its links is usable.
const (
	DNSAllDownAll      = "all"       // every configured address
	DNSAllDownLastGood = "last_good" // the last answer given while something was up
	DNSAllDownServfail = "servfail"  // SERVFAIL
)

// DNSName is one health-steered name.
type DNSName struct {
	// Name relative to the zone ("www", "@") or absolute ("www.example.com.").
	Name string `yaml:"name"`
	// TTL of the answers (default 30s).
	TTL Duration `yaml:"ttl"`
	// MinTTL is the TTL right after one of the name's links changed, or
	// while one waits out its hold-down; it grows back to TTL as the links
	// stay stable (default 5s).
	MinTTL Duration `yaml:"min_ttl"`
	// Policy is all, weighted, failover or first (default all).
	Policy string `yaml:"policy"`
	// Count is how many addresses weighted and first return (default 1).
	Count int `yaml:"count"`
	// Degraded and Saturated say what to do with such links: keep, demote
	// or remove (default demote).
	Degraded  string `yaml:"degraded"`
	Saturated string `yaml:"saturated"`
	// AllDown is the answer when no link is usable: all, last_good or
	// servfail (default all).
	AllDown string `yaml:"all_down"`
	// Records give the name's addresses on each link.
	Records []DNSLinkRecord `yaml:"records"`
	// Host6 makes the name a LAN host with this interface identifier
	// (e.g. "::80") on every link that has ipv6.prefixes: like a record
	// {link, host6} for each such link, except links whose record gives
	// aaaa or host6 itself. Records are then optional.
	Host6 netip.Addr `yaml:"host6"`
}

// Host6Links returns the links a name-level Host6 applies to: those with
// an ipv6.prefixes entry (known or not yet), in the order of c.Links,
// except the ones a record of the name gives IPv6 addresses for.
func (n *DNSName) Host6Links(c *Config) []string {
	if !n.Host6.IsValid() || c.IPv6 == nil {
		return nil
	}
	var out []string
	for _, l := range c.Links {
		if !slices.ContainsFunc(c.IPv6.Prefixes, func(p IPv6Prefix) bool { return p.Link == l.Name }) ||
			slices.ContainsFunc(n.Records, func(r DNSLinkRecord) bool { return r.Link == l.Name && (r.AAAA.IsSet() || r.Host6.IsValid()) }) {
			continue
		}
		out = append(out, l.Name)
	}
	return out
}

// DNSLinkRecord gives a name's address(es) on one link.
type DNSLinkRecord struct {
	Link string  `yaml:"link"`
	A    DNSAddr `yaml:"a"`
	AAAA DNSAddr `yaml:"aaaa"`
	// Host6 is a LAN host's interface identifier, e.g. "::80": the name's
	// AAAA records on this link are that identifier in every
	// ipv6.prefixes entry of the link (one per prefix), so they follow
	// the prefixes when the site is renumbered. Exclusive with AAAA.
	Host6 netip.Addr `yaml:"host6"`
	// Weight overrides the link's weight for this name (default: the
	// link's).
	Weight int `yaml:"weight"`
}

// DNSAddr is an address, or "self": the link's own Address4/Address6.
type DNSAddr struct {
	Self bool
	Addr netip.Addr
}

// IsSet reports whether an address or "self" was given.
func (a DNSAddr) IsSet() bool { return a.Self || a.Addr.IsValid() }

// UnmarshalText parses "self" or an IP address.
func (a *DNSAddr) UnmarshalText(b []byte) error {
	if string(b) == "self" {
		*a = DNSAddr{Self: true}
		return nil
	}
	ip, err := netip.ParseAddr(string(b))
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("bad address %q: want an IP address or \"self\"", b)
	}
	*a = DNSAddr{Addr: ip}
	return nil
}

// MarshalText writes "self" or the address.
func (a DNSAddr) MarshalText() ([]byte, error) {
	if a.Self {
		return []byte("self"), nil
	}
	if !a.Addr.IsValid() {
		return nil, nil
	}
	return a.Addr.MarshalText()
}

// Resolve returns the address for link l: the given one, or l's own for
// "self" (invalid while unknown).
func (a DNSAddr) Resolve(l *Link, family int) netip.Addr {
	if !a.Self {
		return a.Addr
	}
	if l == nil {
		return netip.Addr{}
	}
	if family == 4 {
		return l.Address4
	}
	return l.Address6
}

// Host6Addrs returns the addresses of a host6 record: the interface
// identifier in each of the link's IPv6 LAN prefixes, in the order of
// v.Prefixes. Entries whose prefix is not known (yet) are skipped.
func (r *DNSLinkRecord) Host6Addrs(v *IPv6) []netip.Addr {
	if v == nil || !r.Host6.IsValid() {
		return nil
	}
	var out []netip.Addr
	for _, p := range v.Prefixes {
		if p.Link != r.Link {
			continue
		}
		if a, ok := HostIn(p.Prefix, r.Host6); ok && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// HostIn returns the address with p's network bits and iid's host bits;
// ok is false if p is not a valid IPv6 prefix or iid not an IPv6 address.
func HostIn(p netip.Prefix, iid netip.Addr) (netip.Addr, bool) {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || !iid.Is6() {
		return netip.Addr{}, false
	}
	n, h := p.Masked().Addr().As16(), iid.As16()
	bits := p.Bits()
	for i := range n {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			m := byte(0xff) >> bits
			n[i] |= h[i] & m
			bits = 0
		default:
			n[i] = h[i]
		}
	}
	return netip.AddrFrom16(n), true
}

// DNSTransfer configures outgoing zone transfers and NOTIFY.
type DNSTransfer struct {
	// Allow lists the client prefixes allowed AXFR/IXFR (none by default).
	Allow []netip.Prefix `yaml:"allow"`
	// Key, if set, names the TSIG key transfers must be signed with.
	Key string `yaml:"key"`
	// Notify lists the secondaries sent a NOTIFY when the serial changes.
	Notify []netip.AddrPort `yaml:"notify"`
}

// DNSPush configures RFC 2136 updates to an external primary.
type DNSPush struct {
	// Server is the primary's address, e.g. "192.0.2.53:53".
	Server netip.AddrPort `yaml:"server"`
	// Zone at the primary (default: this zone's name).
	Zone string `yaml:"zone"`
	// Key names the TSIG key the updates are signed with.
	Key string `yaml:"key"`
	// Timeout of one update or query (default 2s).
	Timeout Duration `yaml:"timeout"`
	// RetryMin and RetryMax bound the exponential backoff between failed
	// attempts (default 500ms and 30s).
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
	// Verify is how often the records at the primary are read back and
	// repaired if someone changed them (default 1m; 0s disables).
	Verify Duration `yaml:"verify"`
}

// DNS defaults.
const (
	DefaultDNSUDPSize    = 1232
	DefaultDNSTCPIdle    = 10 * time.Second
	DefaultDNSTCPRead    = 2 * time.Second
	DefaultDNSTCPConns   = 256
	DefaultDNSTCPClient  = 16
	DefaultDNSTCPQueries = 100
	DefaultDNSRRLRate    = 50
	DefaultDNSRRLSlip    = 2
	DefaultDNSRRLPrefix4 = 24
	DefaultDNSRRLPrefix6 = 56
	DefaultDNSZoneTTL    = time.Hour
	DefaultDNSNameTTL    = 30 * time.Second
	DefaultDNSMinTTL     = 5 * time.Second
	DefaultDNSSOARefresh = time.Hour
	DefaultDNSSOARetry   = 10 * time.Minute
	DefaultDNSSOAExpire  = 7 * 24 * time.Hour
	DefaultDNSSOAMinimum = 30 * time.Second
	DefaultDNSPushTO     = 2 * time.Second
	DefaultDNSRetryMin   = 500 * time.Millisecond
	DefaultDNSRetryMax   = 30 * time.Second
	DefaultDNSVerify     = time.Minute
)

// TSIGAlgorithms maps the accepted algorithm names to their DNS names.
var TSIGAlgorithms = map[string]string{
	"hmac-sha1":   mdns.HmacSHA1,
	"hmac-sha224": mdns.HmacSHA224,
	"hmac-sha256": mdns.HmacSHA256,
	"hmac-sha384": mdns.HmacSHA384,
	"hmac-sha512": mdns.HmacSHA512,
}

// AbsName returns name made absolute under origin ("@" is the origin,
// names ending in "." are absolute already), fully qualified and lower
// case; ok is false if it is not a valid domain name.
func AbsName(name, origin string) (string, bool) {
	name = strings.TrimSpace(name)
	switch {
	case name == "" || name == "@":
		name = origin
	case !strings.HasSuffix(name, "."):
		if origin == "." {
			name += "."
		} else {
			name += "." + origin
		}
	}
	if _, ok := mdns.IsDomainName(name); !ok || strings.Contains(name, "..") || strings.Contains(name, "\\") {
		return "", false
	}
	return mdns.CanonicalName(name), true
}

// ParseZoneText parses static records in zone file syntax under origin,
// with ttl for records that give none. $INCLUDE is refused.
func ParseZoneText(text, origin, file string, ttl time.Duration) ([]mdns.RR, error) {
	zp := mdns.NewZoneParser(strings.NewReader(text), origin, file)
	zp.SetDefaultTTL(uint32(ttl / time.Second))
	var rrs []mdns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return rrs, nil
}

// ZoneFile returns the path of a zone's File, relative to the config's
// directory unless absolute.
func (c *Config) ZoneFile(z *DNSZone) string {
	if z.File == "" || filepath.IsAbs(z.File) || c.File == "" {
		return z.File
	}
	return filepath.Join(filepath.Dir(c.File), z.File)
}

// KeySecret returns the base64 secret of a TSIG key, reading SecretFile if
// needed.
func (k *DNSKey) KeySecret() (string, error) {
	s := k.Secret
	if k.SecretFile != "" {
		b, err := os.ReadFile(k.SecretFile)
		if err != nil {
			return "", fmt.Errorf("tsig key %s: %w", k.Name, err)
		}
		s = strings.TrimSpace(string(b))
	}
	if _, err := base64.StdEncoding.DecodeString(s); err != nil || s == "" {
		return "", fmt.Errorf("tsig key %s: secret is not base64", k.Name)
	}
	return s, nil
}

// KeyByName returns the TSIG key called name (fully qualified or not), or
// nil.
func (d *DNS) KeyByName(name string) *DNSKey {
	n := mdns.CanonicalName(name)
	for i := range d.Keys {
		if mdns.CanonicalName(d.Keys[i].Name) == n {
			return &d.Keys[i]
		}
	}
	return nil
}

func init() { sectionChecks = append(sectionChecks, checkDNS) }

func oneOf(k *checker, path string, v *string, def string, allowed ...string) {
	if *v == "" {
		*v = def
		return
	}
	for _, a := range allowed {
		if *v == a {
			return
		}
	}
	k.errorf(path, "unknown value %q: want %s", *v, strings.Join(allowed, ", "))
}

func defDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// checkDNS fills in the dns section's defaults and validates it: the
// server's limits and listeners, rate limiting, TSIG keys, then each zone.
func checkDNS(c *Config, k *checker) {
	d := c.DNS
	if d == nil {
		return
	}
	checkDNSServer(d, k)
	checkDNSRRL(c, k, &d.RRL)
	keys := checkDNSKeys(d, k)
	zones := map[string]int{}
	serving := false
	for i := range d.Zones {
		z := &d.Zones[i]
		if checkDNSZone(c, k, fmt.Sprintf("dns.zones[%d]", i), z, keys, zones, i) && z.Mode != DNSModePush {
			serving = true
		}
	}
	if serving && len(d.Listen) == 0 {
		k.errorf("dns.listen", "missing: the addresses to answer on, e.g. [\"198.51.100.2:53\"]")
	}
}

// checkDNSServer checks the server's sockets, TCP limits and listeners.
func checkDNSServer(d *DNS, k *checker) {
	if d.UDPSockets < 0 || d.UDPSockets > 64 {
		k.errorf("dns.udp_sockets", "must be 1..64, got %d", d.UDPSockets)
	}
	switch {
	case d.UDPSize == 0:
		d.UDPSize = DefaultDNSUDPSize
	case d.UDPSize < 512 || d.UDPSize > 65535:
		k.errorf("dns.udp_size", "must be 512..65535, got %d", d.UDPSize)
	}
	defDur(&d.TCPIdle, DefaultDNSTCPIdle)
	defDur(&d.TCPReadTimeout, DefaultDNSTCPRead)
	for _, f := range []struct {
		field string
		v     *int
		def   int
	}{
		{"dns.tcp_max_connections", &d.TCPMaxConnections, DefaultDNSTCPConns},
		{"dns.tcp_max_per_client", &d.TCPMaxPerClient, DefaultDNSTCPClient},
		{"dns.tcp_max_queries", &d.TCPMaxQueries, DefaultDNSTCPQueries},
	} {
		switch {
		case *f.v < 0:
			k.errorf(f.field, "must not be negative, got %d", *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	seen := map[netip.AddrPort]int{}
	for i, ap := range d.Listen {
		p := fmt.Sprintf("dns.listen[%d]", i)
		if ap.Port() == 0 {
			k.errorf(p, "%s: give a port, e.g. %s", ap, netip.AddrPortFrom(ap.Addr(), 53))
		}
		if j, dup := seen[ap]; dup {
			k.errorf(p, "%s already listed as dns.listen[%d]", ap, j)
		}
		seen[ap] = i
	}

}

// checkDNSRRL fills in and checks response rate limiting.
func checkDNSRRL(c *Config, k *checker, r *DNSRRL) {
	if r.Rate < 0 || r.Burst < 0 || r.Slip < 0 {
		k.errorf("dns.rrl", "rate, burst and slip must not be negative")
	}
	if r.Rate == 0 {
		r.Rate = DefaultDNSRRLRate
	}
	if r.Burst == 0 {
		r.Burst = 2 * r.Rate
	}
	if r.Slip == 0 && !c.Has("dns.rrl.slip") {
		r.Slip = DefaultDNSRRLSlip
	}
	if r.IPv4Prefix == 0 {
		r.IPv4Prefix = DefaultDNSRRLPrefix4
	} else if r.IPv4Prefix < 8 || r.IPv4Prefix > 32 {
		k.errorf("dns.rrl.ipv4_prefix", "must be 8..32, got %d", r.IPv4Prefix)
	}
	if r.IPv6Prefix == 0 {
		r.IPv6Prefix = DefaultDNSRRLPrefix6
	} else if r.IPv6Prefix < 16 || r.IPv6Prefix > 128 {
		k.errorf("dns.rrl.ipv6_prefix", "must be 16..128, got %d", r.IPv6Prefix)
	}

}

// checkDNSKeys checks the TSIG keys and returns their (absolute) names,
// each with its index.
func checkDNSKeys(d *DNS, k *checker) map[string]int {
	keys := map[string]int{}
	for i := range d.Keys {
		key := &d.Keys[i]
		p := fmt.Sprintf("dns.keys[%d]", i)
		n, ok := AbsName(key.Name, ".")
		if key.Name == "" || !ok {
			k.errorf(p+".name", "missing or bad key name %q: want a domain name such as multihome-update.", key.Name)
		} else {
			key.Name = n
			if j, dup := keys[n]; dup {
				k.errorf(p+".name", "duplicate key %q (also dns.keys[%d])", n, j)
			}
			keys[n] = i
		}
		oneOf(k, p+".algorithm", &key.Algorithm, "hmac-sha256", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")
		switch {
		case key.Secret != "" && key.SecretFile != "":
			k.errorf(p+".secret", "give secret or secret_file, not both")
		case key.Secret == "" && key.SecretFile == "":
			k.errorf(p+".secret", "missing: the key's base64 secret (or secret_file)")
		default:
			if _, err := key.KeySecret(); err != nil {
				path := p + ".secret"
				if key.SecretFile != "" {
					path = p + ".secret_file"
				}
				k.errorf(path, "%v", err)
			}
		}
	}
	return keys
}

// knownKey returns the absolute name of a key a zone refers to at path,
// reporting a key that dns.keys does not define.
func knownKey(k *checker, keys map[string]int, path, name string) string {
	if name == "" {
		return ""
	}
	n, _ := AbsName(name, ".")
	if _, ok := keys[n]; !ok {
		k.errorf(path, "unknown key %q: define it under dns.keys", name)
	}
	return n
}

// checkDNSZone fills in and checks zone i at path p; zones maps the origins
// seen so far to their index. It returns false when the zone has no
// usable name.
func checkDNSZone(c *Config, k *checker, p string, z *DNSZone, keys, zones map[string]int, i int) bool {
	origin, ok := AbsName(z.Name, ".")
	if z.Name == "" || !ok {
		k.errorf(p+".name", "missing or bad zone name %q", z.Name)
		return false
	}
	z.Name = origin
	if j, dup := zones[origin]; dup {
		k.errorf(p+".name", "duplicate zone %q (also dns.zones[%d])", origin, j)
	}
	zones[origin] = i
	def := DNSModeServe
	if z.Push != nil {
		def = DNSModeBoth
	}
	oneOf(k, p+".mode", &z.Mode, def, DNSModeServe, DNSModePush, DNSModeBoth)
	if z.Mode != DNSModeServe && z.Push == nil {
		k.errorf(p+".mode", "mode %s needs a push section", z.Mode)
	}
	defDur(&z.TTL, DefaultDNSZoneTTL)
	checkSOA(k, p+".soa", &z.SOA)
	checkStatic(c, k, p, z)
	names := map[string]int{}
	for j := range z.Names {
		checkDNSName(c, k, fmt.Sprintf("%s.names[%d]", p, j), origin, &z.Names[j], names, j)
	}
	z.Transfer.Key = knownKey(k, keys, p+".transfer.key", z.Transfer.Key)
	for j, ap := range z.Transfer.Notify {
		if ap.Port() == 0 {
			k.errorf(fmt.Sprintf("%s.transfer.notify[%d]", p, j), "%s: give a port, e.g. %s", ap, netip.AddrPortFrom(ap.Addr(), 53))
		}
	}
	if z.Push != nil {
		checkDNSPush(c, k, p+".push", z, origin, keys)
	}
	return true
}

// checkDNSPush fills in and checks a zone's push section at pp.
func checkDNSPush(c *Config, k *checker, pp string, z *DNSZone, origin string, keys map[string]int) {
	ps := z.Push
	if !ps.Server.IsValid() || ps.Server.Port() == 0 {
		k.errorf(pp+".server", "missing: the primary's address and port, e.g. 192.0.2.53:53")
	}
	if ps.Zone == "" {
		ps.Zone = origin
	} else if pz, ok := AbsName(ps.Zone, "."); !ok {
		k.errorf(pp+".zone", "bad zone name %q", ps.Zone)
	} else {
		ps.Zone = pz
		for _, n := range z.Names {
			if abs, ok := AbsName(n.Name, origin); ok && !mdns.IsSubDomain(pz, abs) {
				k.errorf(pp+".zone", "name %s is not inside the primary's zone %s", abs, pz)
				break
			}
		}
	}
	ps.Key = knownKey(k, keys, pp+".key", ps.Key)
	defDur(&ps.Timeout, DefaultDNSPushTO)
	defDur(&ps.RetryMin, DefaultDNSRetryMin)
	defDur(&ps.RetryMax, DefaultDNSRetryMax)
	if ps.Verify == 0 && !c.Has(pp+".verify") {
		ps.Verify = Duration(DefaultDNSVerify)
	}
	if ps.RetryMax < ps.RetryMin {
		k.errorf(pp+".retry_max", "%s is below retry_min %s", ps.RetryMax.D(), ps.RetryMin.D())
	}
}

func checkSOA(k *checker, p string, s *DNSSOA) {
	defDur(&s.TTL, DefaultDNSZoneTTL)
	defDur(&s.Refresh, DefaultDNSSOARefresh)
	defDur(&s.Retry, DefaultDNSSOARetry)
	defDur(&s.Expire, DefaultDNSSOAExpire)
	defDur(&s.Minimum, DefaultDNSSOAMinimum)
	for _, f := range []struct {
		name string
		v    string
	}{{"mname", s.MName}, {"rname", s.RName}} {
		if f.v != "" {
			if _, ok := AbsName(f.v, "."); !ok {
				k.errorf(p+"."+f.name, "bad domain name %q", f.v)
			}
		}
	}
}

// checkStatic parses the zone's static records, from the file and the
// records list, and checks what must hold of them.
func checkStatic(c *Config, k *checker, p string, z *DNSZone) {
	ttl := z.TTL.D()
	if z.File != "" {
		path := c.ZoneFile(z)
		b, err := os.ReadFile(path)
		if err != nil {
			k.errorf(p+".file", "%v", err)
		} else if rrs, err := ParseZoneText(string(b), z.Name, path, ttl); err != nil {
			k.errorf(p+".file", "%v", err)
		} else {
			checkInZone(k, p+".file", z.Name, rrs)
		}
	}
	for j, s := range z.Records {
		pj := fmt.Sprintf("%s.records[%d]", p, j)
		rrs, err := ParseZoneText(s, z.Name, "", ttl)
		switch {
		case err != nil:
			k.errorf(pj, "%v", err)
		case len(rrs) != 1:
			k.errorf(pj, "want one record per line, got %d", len(rrs))
		default:
			checkInZone(k, pj, z.Name, rrs)
		}
	}
}

func checkInZone(k *checker, p, origin string, rrs []mdns.RR) {
	for _, rr := range rrs {
		if !mdns.IsSubDomain(origin, rr.Header().Name) {
			k.errorf(p, "%s is outside the zone %s", rr.Header().Name, origin)
			return
		}
	}
}

func checkDNSName(c *Config, k *checker, p, origin string, n *DNSName, seen map[string]int, j int) {
	abs, ok := AbsName(n.Name, origin)
	switch {
	case n.Name == "" || !ok:
		k.errorf(p+".name", "missing or bad name %q", n.Name)
	case !mdns.IsSubDomain(origin, abs):
		k.errorf(p+".name", "%s is outside the zone %s", abs, origin)
	default:
		if i, dup := seen[abs]; dup {
			k.errorf(p+".name", "duplicate name %s (also names[%d])", abs, i)
		}
		seen[abs] = j
	}
	defDur(&n.TTL, DefaultDNSNameTTL)
	defDur(&n.MinTTL, min(DefaultDNSMinTTL, n.TTL.D()))
	if n.TTL.D() < time.Second {
		k.errorf(p+".ttl", "%s is below 1s", n.TTL.D())
	}
	if n.MinTTL > n.TTL {
		k.errorf(p+".min_ttl", "%s is above ttl %s", n.MinTTL.D(), n.TTL.D())
	}
	oneOf(k, p+".policy", &n.Policy, DNSPolicyAll, DNSPolicyAll, DNSPolicyWeighted, DNSPolicyFailover, DNSPolicyFirst)
	switch {
	case n.Count < 0:
		k.errorf(p+".count", "must not be negative, got %d", n.Count)
	case n.Count == 0:
		n.Count = 1
	case n.Policy == DNSPolicyAll || n.Policy == DNSPolicyFailover:
		k.errorf(p+".count", "count applies to the weighted and first policies, not %s", n.Policy)
	}
	oneOf(k, p+".degraded", &n.Degraded, DNSDemote, DNSKeep, DNSDemote, DNSRemove)
	oneOf(k, p+".saturated", &n.Saturated, DNSDemote, DNSKeep, DNSDemote, DNSRemove)
	oneOf(k, p+".all_down", &n.AllDown, DNSAllDownAll, DNSAllDownAll, DNSAllDownLastGood, DNSAllDownServfail)
	if n.Host6.IsValid() && checkIID(k, p+".host6", n.Host6) {
		if c.IPv6 == nil || len(c.IPv6.Prefixes) == 0 {
			k.errorf(p+".host6", "needs an ipv6 section with prefixes: host6 is the host's address in each link's ipv6.prefixes")
		}
	}
	if len(n.Records) == 0 && !n.Host6.IsValid() {
		k.errorf(p+".records", "missing: give the name's address on each link")
	}
	for i := range n.Records {
		r := &n.Records[i]
		pr := fmt.Sprintf("%s.records[%d]", p, i)
		if r.Link == "" {
			k.errorf(pr+".link", "missing: the link this address is on")
		} else if c.LinkByName(r.Link) == nil {
			k.errorf(pr+".link", "unknown link %q", r.Link)
		}
		if !r.A.IsSet() && !r.AAAA.IsSet() && !r.Host6.IsValid() {
			k.errorf(pr, "give a, aaaa or both")
		}
		if r.Host6.IsValid() {
			checkHost6(c, k, pr, r)
		}
		if a := r.A.Addr; a.IsValid() && !a.Is4() {
			k.errorf(pr+".a", "%s is not an IPv4 address", a)
		}
		if a := r.AAAA.Addr; a.IsValid() && (!a.Is6() || a.Is4In6()) {
			k.errorf(pr+".aaaa", "%s is not an IPv6 address", a)
		}
		if r.Weight < 0 {
			k.errorf(pr+".weight", "must not be negative, got %d", r.Weight)
		}
	}
}

// checkHost6 validates a record's host6: an interface identifier, on a
// link that has LAN prefixes. Entries are counted by link whatever their
// prefix: a learned one may not be known yet.
func checkHost6(c *Config, k *checker, pr string, r *DNSLinkRecord) {
	p := pr + ".host6"
	if !checkIID(k, p, r.Host6) {
		return
	}
	if r.AAAA.IsSet() {
		k.errorf(p, "give aaaa or host6, not both")
	}
	if r.Link == "" || c.LinkByName(r.Link) == nil {
		return
	}
	if c.IPv6 == nil {
		k.errorf(p, "needs an ipv6 section: host6 is the host's address in each of link %s's ipv6.prefixes", r.Link)
		return
	}
	if !slices.ContainsFunc(c.IPv6.Prefixes, func(x IPv6Prefix) bool { return x.Link == r.Link }) {
		k.errorf(p, "link %s has no ipv6.prefixes entry: host6 is the host's address in each of the link's LAN prefixes", r.Link)
	}
}

// checkIID reports whether h is an IPv6 interface identifier: nothing in
// the top 64 bits, not all zero.
func checkIID(k *checker, p string, h netip.Addr) bool {
	b := h.As16()
	switch {
	case !h.Is6():
		k.errorf(p, "%s is not an IPv6 interface identifier: want e.g. \"::80\"", h)
	case h.Zone() != "":
		k.errorf(p, "%s: an interface identifier has no zone", h)
	case [8]byte(b[:8]) != [8]byte{}:
		k.errorf(p, "%s has bits in the top 64 (the prefix's): want an interface identifier such as ::80", h)
	case h == netip.IPv6Unspecified():
		k.errorf(p, ":: is the subnet-router anycast address: want the host's interface identifier, e.g. ::80")
	default:
		return true
	}
	return false
}
