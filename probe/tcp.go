package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// tcpProber connects to host:port. A refused connection counts as success:
// the RST came from the target through this link, which proves the path.
type tcpProber struct {
	target string
	host   string
	port   int
	b      Binding
}

func newTCP(target string, b Binding) (*tcpProber, error) {
	host, port, err := parseHostPort(target, 80)
	if err != nil {
		return nil, fmt.Errorf("tcp probe: %w", err)
	}
	return &tcpProber{target: target, host: host, port: port, b: b}, nil
}

func (p *tcpProber) Target() string { return p.target }
func (p *tcpProber) Type() string   { return "tcp" }
func (p *tcpProber) Close() error   { return nil }

func (p *tcpProber) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	addr, err := p.b.resolve(ctx, p.host)
	if err != nil {
		return 0, err
	}
	d := p.b.dialer(addr, true)
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(p.port)).String())
	rtt := time.Since(start)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return rtt, nil
		}
		return 0, classify(err, ctx)
	}
	// Reset rather than close: no TIME_WAIT left behind per probe.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
	return rtt, nil
}
