package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("2001:db8::1")}
	links := []Link{
		{Name: "a", Addr4: netip.MustParseAddr("198.51.100.2"), Addr6: netip.MustParseAddr("2001:db8:1::2")},
		{Name: "b", Addr4: netip.MustParseAddr("198.51.100.18")},
	}
	var got []string
	for _, a := range Plan(addrs, 443, links) {
		got = append(got, a.Dst.String()+"/"+a.Link)
	}
	want := "[2001:db8::1]:443/a 203.0.113.1:443/b 203.0.113.1:443/a 203.0.113.2:443/a 203.0.113.2:443/b"
	if strings.Join(got, " ") != want {
		t.Errorf("plan\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if n := len(Plan(addrs, 443, nil)); n != 3 {
		t.Errorf("no links: %d attempts, want one per address", n)
	}
}

// fakeNet answers attempts by destination: "dead" hangs until cancelled,
// "refused" fails at once, anything else connects after 10 ms.
type fakeNet struct {
	mu      sync.Mutex
	started []string
	open    int
}

func (f *fakeNet) dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	src := ""
	if d.LocalAddr != nil {
		src = d.LocalAddr.String()
	}
	f.mu.Lock()
	f.started = append(f.started, fmt.Sprintf("%s from %s", address, src))
	f.mu.Unlock()
	host, _, _ := net.SplitHostPort(address)
	switch {
	case host == "203.0.113.66" || src == "198.51.100.2:0":
		<-ctx.Done()
		return nil, ctx.Err()
	case host == "203.0.113.99":
		return nil, errors.New("connection refused")
	}
	time.Sleep(10 * time.Millisecond)
	a, b := net.Pipe()
	go func() { <-ctx.Done(); b.Close() }()
	f.mu.Lock()
	f.open++
	f.mu.Unlock()
	return a, nil
}

func TestRace(t *testing.T) {
	links := []Link{{Name: "dead", Addr4: netip.MustParseAddr("198.51.100.2")}, {Name: "live", Addr4: netip.MustParseAddr("198.51.100.18")}}
	for _, c := range []struct {
		name  string
		addrs []string
		links []Link
		min   time.Duration
		max   time.Duration
	}{
		{"dead first address", []string{"203.0.113.66", "203.0.113.80"}, nil, 240 * time.Millisecond, 400 * time.Millisecond},
		{"refused first address: next at once", []string{"203.0.113.99", "203.0.113.80"}, nil, 0, 150 * time.Millisecond},
		{"dead first link", []string{"203.0.113.80"}, links, 240 * time.Millisecond, 400 * time.Millisecond},
	} {
		f := &fakeNet{}
		d := &Dialer{Links: c.links, DialFunc: f.dial, Lookup: func(ctx context.Context, network, host string) ([]netip.Addr, error) {
			var out []netip.Addr
			for _, a := range c.addrs {
				if network == "ip4" {
					out = append(out, netip.MustParseAddr(a))
				}
			}
			return out, nil
		}}
		start := time.Now()
		conn, err := d.DialContext(context.Background(), "tcp", "example.net:443")
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		conn.Close()
		if took < c.min || took > c.max {
			t.Errorf("%s: took %v, want %v..%v (attempts %q)", c.name, took, c.min, c.max, f.started)
		}
	}
}

func TestRaceAllFail(t *testing.T) {
	f := &fakeNet{}
	d := &Dialer{DialFunc: f.dial, Timeout: 2 * time.Second}
	_, err := d.DialContext(context.Background(), "tcp", "203.0.113.99:443")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("got %v, want every attempt's error", err)
	}
	_, err = d.DialContext(context.Background(), "tcp", "203.0.113.66:443")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dead address with a timeout: %v", err)
	}
}

// TestResolutionDelay: an IPv4 answer waits 50 ms for the IPv6 one, and
// the IPv6 address is tried first when it comes in time.
func TestResolutionDelay(t *testing.T) {
	lookup := func(v6delay time.Duration) func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		return func(ctx context.Context, network, host string) ([]netip.Addr, error) {
			if network == "ip6" {
				time.Sleep(v6delay)
				return []netip.Addr{netip.MustParseAddr("2001:db8::80")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("203.0.113.80")}, nil
		}
	}
	d := &Dialer{Lookup: lookup(20 * time.Millisecond)}
	addrs, err := d.resolve(context.Background(), "tcp", "example.net")
	if err != nil || len(addrs) != 2 || !addrs[0].Is6() {
		t.Errorf("IPv6 20 ms late: %v %v, want both, IPv6 first", addrs, err)
	}
	d = &Dialer{Lookup: lookup(300 * time.Millisecond)}
	start := time.Now()
	addrs, err = d.resolve(context.Background(), "tcp", "example.net")
	if err != nil || len(addrs) != 1 || !addrs[0].Is4() || time.Since(start) > 200*time.Millisecond {
		t.Errorf("IPv6 300 ms late: %v %v after %v, want IPv4 alone after 50 ms", addrs, err, time.Since(start))
	}
}

// TestFromDaemonAbsent: with no daemon, the dialer still works, with the
// kernel's choice of source, and says why it has no links.
func TestFromDaemonAbsent(t *testing.T) {
	d, err := FromDaemon(context.Background(), "unix:"+t.TempDir()+"/none.sock", "")
	if err == nil || d == nil || len(d.Links) != 0 {
		t.Fatalf("no daemon: %+v, %v", d, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
