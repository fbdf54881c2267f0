package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/multihome/multihome/netns"
)

// Query asks the DNS server at server (port 53) for name's records of
// type qtype (dns.TypeA or dns.TypeAAAA), from the namespace of role, as
// a resolver there would. It returns the answer's addresses, sorted, and
// their TTL; a response code other than NOERROR is an error.
func (l *Lab) Query(role, server, name string, qtype uint16, timeout time.Duration) ([]string, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: timeout, Dialer: &net.Dialer{}}
	var r *dns.Msg
	err := netns.Do(l.NS(role), func() error {
		var err error
		r, _, err = c.Exchange(m, net.JoinHostPort(server, "53"))
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	var out []string
	var ttl uint32
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
			ttl = a.Hdr.Ttl
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
			ttl = a.Hdr.Ttl
		}
	}
	sort.Strings(out)
	return out, ttl, nil
}

// GetFrom fetches url over HTTP from the namespace of role, from the source
// address src (the kernel's choice when invalid), on a fresh connection,
// within timeout, and returns the body with surrounding space trimmed.
// The core's HTTP server answers /ip with the source address it saw.
func (l *Lab) GetFrom(role string, src netip.Addr, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &net.Dialer{Timeout: timeout}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return netns.DialContext(ctx, l.NS(role), d, network, address)
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}
