package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/multihome/multihome/config"
)

// httpProber GETs a URL on a fresh connection, dialled by itself so the
// socket is bound to the link (no shared transport, no connection reuse).
type httpProber struct {
	target string
	tls    bool
	host   string // to dial
	port   int
	header string // Host header
	path   string
	expect int
	b      Binding
}

func newHTTP(p config.Probe, useTLS bool, b Binding) (*httpProber, error) {
	defPort := 80
	if useTLS {
		defPort = 443
	}
	host, port, err := parseHostPort(p.Target, defPort)
	if err != nil {
		return nil, fmt.Errorf("http probe: %w", err)
	}
	hp := &httpProber{target: p.Target, tls: useTLS, host: host, port: port, header: p.Host, path: p.Path, expect: p.ExpectStatus, b: b}
	if hp.header == "" {
		hp.header = host
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			hp.header = "[" + host + "]"
		}
		if port != defPort {
			hp.header = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	if hp.path == "" {
		hp.path = "/"
	}
	if hp.path[0] != '/' {
		hp.path = "/" + hp.path
	}
	if hp.expect == 0 {
		hp.expect = http.StatusOK
	}
	return hp, nil
}

func (p *httpProber) Target() string { return p.target }
func (p *httpProber) Type() string {
	if p.tls {
		return "https"
	}
	return "http"
}
func (p *httpProber) Close() error { return nil }

func (p *httpProber) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	addr, err := p.b.resolve(ctx, p.host)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	c, err := p.b.dialer(addr, true).DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(p.port)).String())
	if err != nil {
		return 0, classify(err, ctx)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if p.tls {
		sni, _, _ := net.SplitHostPort(p.header)
		if sni == "" {
			sni = p.header
		}
		tc := tls.Client(c, &tls.Config{
			ServerName: sni,
			// The probe proves the path, not the server's identity.
			InsecureSkipVerify: true, //nolint:gosec
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, classify(err, ctx)
		}
		c = tc
	}
	scheme := "http"
	if p.tls {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+p.header+p.path, nil)
	if err != nil {
		return 0, err
	}
	req.Host = p.header
	req.Header.Set("User-Agent", "multihome-probe")
	req.Close = true
	if err := req.Write(c); err != nil {
		return 0, classify(err, ctx)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, classify(err, ctx)
	}
	rtt := time.Since(start)
	resp.Body.Close()
	if resp.StatusCode != p.expect {
		return 0, fmt.Errorf("status %d, want %d", resp.StatusCode, p.expect)
	}
	return rtt, nil
}
