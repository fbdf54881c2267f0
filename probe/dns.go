package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/multihome/multihome/config"
)

// dnsProber asks one question over UDP; NOERROR or NXDOMAIN proves the path.
type dnsProber struct {
	target string
	host   string
	port   int
	query  string
	b      Binding
}

func newDNS(p config.Probe, b Binding) (*dnsProber, error) {
	host, port, err := parseHostPort(p.Target, 53)
	if err != nil {
		return nil, fmt.Errorf("dns probe: %w", err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("dns probe: target %q is not an IP address", p.Target)
	}
	q := p.Query
	if q == "" {
		q = "."
	}
	if _, ok := dns.IsDomainName(q); !ok {
		return nil, fmt.Errorf("dns probe %s: bad query name %q", p.Target, q)
	}
	return &dnsProber{target: p.Target, host: host, port: port, query: dns.Fqdn(q), b: b}, nil
}

func (p *dnsProber) Target() string { return p.target }
func (p *dnsProber) Type() string   { return "dns" }
func (p *dnsProber) Close() error   { return nil }

func (p *dnsProber) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	addr := netip.MustParseAddr(p.host).Unmap()
	c, err := p.b.dialer(addr, false).DialContext(ctx, "udp", netip.AddrPortFrom(addr, uint16(p.port)).String())
	if err != nil {
		return 0, classify(err, ctx)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	dc := &dns.Conn{Conn: c}
	m := new(dns.Msg)
	m.SetQuestion(p.query, dns.TypeNS)
	m.RecursionDesired = true
	start := time.Now()
	if err := dc.WriteMsg(m); err != nil {
		return 0, classify(err, ctx)
	}
	for {
		r, err := dc.ReadMsg()
		if err != nil {
			return 0, classify(err, ctx)
		}
		if r.Id != m.Id || !r.Response {
			continue
		}
		rtt := time.Since(start)
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return 0, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		return rtt, nil
	}
}
