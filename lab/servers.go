package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/multihome/multihome/netns"
)

// Service names a kind of server in the core.
type Service string

// Services of the core.
const (
	ServiceHTTP Service = "http" // TCP 80
	ServiceDNS  Service = "dns"  // UDP and TCP 53
	ServiceEcho Service = "echo" // TCP 7
)

// Ports of the services.
const (
	HTTPPort = 80
	DNSPort  = 53
	EchoPort = 7
)

// MaxBytes bounds /bytes?n=N.
const MaxBytes = 1 << 40

// servers are the HTTP, DNS and echo servers of the core. Their listening
// sockets live in the core namespace; they are served from ordinary
// goroutines.
type servers struct {
	log *slog.Logger

	mu     sync.Mutex
	seen   map[Service]map[string]int // service → client source address → count
	echo   map[net.Conn]struct{}
	closed bool

	http   *http.Server
	dns    []*dns.Server
	echoLn []net.Listener
	wg     sync.WaitGroup
	once   sync.Once
}

func startServers(ctx context.Context, ns string, log *slog.Logger) (_ *servers, err error) {
	s := &servers{
		log:  log.With("component", "servers"),
		seen: map[Service]map[string]int{},
		echo: map[net.Conn]struct{}{},
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	listen := func(network, addr string) (net.Listener, error) {
		return netns.Listen(ctx, ns, nil, network, addr)
	}
	var httpLns []net.Listener
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := listen(network, fmt.Sprintf(":%d", HTTPPort))
		if err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
		httpLns = append(httpLns, ln)

		ln, err = listen(network, fmt.Sprintf(":%d", EchoPort))
		if err != nil {
			closeAll(httpLns)
			return nil, fmt.Errorf("echo: %w", err)
		}
		s.echoLn = append(s.echoLn, ln)

		ln, err = listen(network, fmt.Sprintf(":%d", DNSPort))
		if err != nil {
			closeAll(httpLns)
			return nil, fmt.Errorf("dns: %w", err)
		}
		s.dns = append(s.dns, &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveDNS)})

		udp := "udp" + network[3:]
		pc, err := netns.ListenPacket(ctx, ns, nil, udp, fmt.Sprintf(":%d", DNSPort))
		if err != nil {
			closeAll(httpLns)
			return nil, fmt.Errorf("dns: %w", err)
		}
		s.dns = append(s.dns, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS)})
	}

	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	for _, ln := range httpLns {
		s.wg.Go(func() { s.http.Serve(ln) })
	}
	for _, ln := range s.echoLn {
		s.wg.Go(func() { s.serveEcho(ln) })
	}
	for _, d := range s.dns {
		started := make(chan struct{})
		d.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		s.wg.Go(func() { errc <- d.ActivateAndServe() })
		select {
		case <-started:
		case err := <-errc:
			return nil, fmt.Errorf("dns: %w", err)
		}
	}
	return s, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// close stops every server and waits for them. Idempotent.
func (s *servers) close() {
	s.once.Do(func() {
		if s.http != nil {
			s.http.Close()
		}
		for _, d := range s.dns {
			if err := d.Shutdown(); err != nil {
				// Not started: close its sockets directly.
				if d.Listener != nil {
					d.Listener.Close()
				}
				if d.PacketConn != nil {
					d.PacketConn.Close()
				}
			}
		}
		closeAll(s.echoLn)
		s.mu.Lock()
		s.closed = true
		for c := range s.echo {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// record counts a request from remote ("addr:port").
func (s *servers) record(svc Service, remote string) {
	src := sourceIP(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[svc] == nil {
		s.seen[svc] = map[string]int{}
	}
	s.seen[svc][src]++
}

func (s *servers) sources(svc Service) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, m := range s.seen {
		if svc != "" && k != svc {
			continue
		}
		for src, n := range m {
			out[src] += n
		}
	}
	return out
}

func (s *servers) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.seen)
}

// SeenSources returns how many HTTP requests, DNS queries and echo
// connections the core's servers received from each client source address
// since Up or the last ResetSeen. A server behind a gateway that
// translates sees the address of the ISP a connection left through.
func (l *Lab) SeenSources() map[string]int { return l.SeenBy("") }

// SeenBy is SeenSources for one service ("" for all).
func (l *Lab) SeenBy(svc Service) map[string]int {
	if l.srv == nil {
		return map[string]int{}
	}
	return maps.Clone(l.srv.sources(svc))
}

// ResetSeen forgets the sources seen so far.
func (l *Lab) ResetSeen() {
	if l.srv != nil {
		l.srv.reset()
	}
}

// sourceIP returns the address of "addr:port", IPv4-mapped addresses
// unmapped.
func sourceIP(addrPort string) string {
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		return addrPort
	}
	return ap.Addr().Unmap().String()
}

// httpHandler serves:
//
//	GET /health       200 "ok"
//	GET /ip           the client's source address
//	GET /bytes?n=N    N bytes (zeros), streamed
//	GET /status/CODE  an empty response with that status (200..599)
func (s *servers) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /ip", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sourceIP(r.RemoteAddr)+"\n")
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, "want n=0.."+strconv.Itoa(MaxBytes), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 32<<10)
		for n > 0 {
			chunk := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:chunk]); err != nil {
				return
			}
			n -= chunk
		}
	})
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "want a status code 200..599", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(ServiceHTTP, r.RemoteAddr)
		mux.ServeHTTP(w, r)
	})
}

// serveDNS answers A and AAAA queries for any name with DNSAnswer and
// DNSAnswer6, and TXT queries for any name (such as "whoami.") with the
// client's source address.
func (s *servers) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	src := sourceIP(w.RemoteAddr().String())
	s.record(ServiceDNS, w.RemoteAddr().String())
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 5}
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(DNSAnswer).To4()})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP(DNSAnswer6)})
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{src}})
		}
	}
	w.WriteMsg(m)
}

// serveEcho echoes every byte back on every connection until the client
// closes it or the lab goes down.
func (s *servers) serveEcho(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "use of closed") {
				s.log.Warn("echo accept", "err", err)
			}
			return
		}
		s.record(ServiceEcho, c.RemoteAddr().String())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.echo[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			io.Copy(c, c)
			c.Close()
			s.mu.Lock()
			delete(s.echo, c)
			s.mu.Unlock()
		})
	}
}
