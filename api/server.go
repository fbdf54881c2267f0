package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/metrics"
	"github.com/multihome/multihome/monitor"
)

// DefaultListen is where the API listens unless told otherwise.
const DefaultListen = "unix:/run/multihome/api.sock"

// DefaultHistory is how many events the decision log keeps.
const DefaultHistory = 1000

// Backend is what the API serves and acts on: the daemon.
type Backend interface {
	monitor.Source
	// SetAdmin sets an operator override on a link (AdminNone clears it).
	SetAdmin(link string, a monitor.Admin, reason string) error
	// Config returns the config in force.
	Config() *config.Config
	// ReloadFile re-reads the config file, validates and applies it; on
	// error the daemon keeps running on the old config.
	ReloadFile() error
}

// Options are the API server's settings.
type Options struct {
	// Listen is "unix:/path/to.sock" or a TCP "host:port" (default
	// DefaultListen).
	Listen string
	// Token, when set, must be sent as "Authorization: Bearer TOKEN" to
	// every /api/ and /metrics request. Required when Listen is a TCP
	// address that is not loopback.
	Token string
	// Registry is served at /metrics; the server registers its link and
	// reload collectors on it. Nil means a fresh one with the Go and
	// process collectors (metrics.NewRegistry).
	Registry *prometheus.Registry
	// History is how many events the decision log keeps (default
	// DefaultHistory).
	History int
	// KeepAlive is the interval of keep-alive comments on event streams
	// (default 15s).
	KeepAlive time.Duration
	// StreamWriteTimeout bounds each write to an event stream (default
	// 10s; a write may be stopped after half of it): a client that takes
	// nothing for that long is dropped (counted in
	// multihome_bound_dropped_total{queue="api.stream"}).
	StreamWriteTimeout time.Duration
	// SampleInterval is how often link measurements are sampled for
	// GET /api/v1/history (default 2s); HistorySamples how many are kept
	// per link (default 180: 6 minutes).
	SampleInterval time.Duration
	HistorySamples int
}

// Server serves the API, the metrics and the dashboard.
type Server struct {
	b       Backend
	opts    Options
	log     *slog.Logger
	links   *metrics.Links
	reloads *metrics.Reloads
	events  *eventLog
	history *history
	handler http.Handler
	started time.Time

	// auth is the token in force and whether the listener is TCP
	// loopback without a token (requests must then name a loopback host:
	// DNS rebinding). Reconfigure replaces it.
	auth atomic.Pointer[authConf]

	mu   sync.Mutex
	addr net.Addr
	// While Serve runs: its HTTP server, the listener in use, the ones
	// Reconfigure retired (their Serve errors are expected) and where
	// the other Serve errors go.
	srv     *http.Server
	ln      net.Listener
	retired map[net.Listener]bool
	errc    chan error
}

type authConf struct {
	token           string
	sum             [32]byte
	loopbackNoToken bool
}

// authFor checks that a listen address and token go together and returns
// the authentication they make.
func authFor(listen, token string) (*authConf, error) {
	network, address, err := splitListen(listen)
	if err != nil {
		return nil, err
	}
	a := &authConf{token: token, sum: sha256.Sum256([]byte(token))}
	if network == "tcp" {
		loop, err := isLoopback(address)
		if err != nil {
			return nil, err
		}
		if !loop && token == "" {
			return nil, fmt.Errorf("api: refusing to listen on %s without a token: anyone who can reach it could take links down; set a token, or listen on a unix socket or a loopback address", address)
		}
		a.loopbackNoToken = loop && token == ""
	}
	return a, nil
}

// New checks opts and builds a server. It does not listen yet.
func New(b Backend, opts Options, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = 10 * time.Second
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = 2 * time.Second
	}
	if opts.HistorySamples <= 0 {
		opts.HistorySamples = 180
	}
	auth, err := authFor(opts.Listen, opts.Token)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s := &Server{
		b: b, opts: opts, log: log, started: now,
		events:  newEventLog(opts.History, uint64(now.UnixMicro())),
		history: newHistory(opts.HistorySamples),
	}
	s.auth.Store(auth)
	reg := opts.Registry
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	s.links = metrics.NewLinks(b)
	s.reloads = metrics.NewReloads()
	if err := reg.Register(s.links); err != nil {
		return nil, fmt.Errorf("api: register link metrics: %w", err)
	}
	if err := reg.Register(s.reloads); err != nil {
		reg.Unregister(s.links)
		return nil, fmt.Errorf("api: register reload metrics: %w", err)
	}
	s.handler = s.routes(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	return s, nil
}

// Handler returns the server's HTTP handler, for tests and for embedding
// in another server. Events are recorded only while Serve runs.
func (s *Server) Handler() http.Handler { return s.handler }

// Addr returns the address the server listens on, once Serve has
// started recording events (nil before).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run listens on opts.Listen and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Listen opens the listener of opts.Listen. A unix socket's directory is
// created if missing, a stale socket file (no one listening) is replaced,
// and the socket is made accessible to its owner and group only.
func (s *Server) Listen() (net.Listener, error) {
	s.mu.Lock()
	listen := s.opts.Listen
	s.mu.Unlock()
	return listenOn(listen)
}

func listenOn(listen string) (net.Listener, error) {
	network, address, err := splitListen(listen)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		return listenUnix(address)
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return ln, nil
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("api: %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	return ln, nil
}

// Serve serves on ln until ctx is done, then closes it. It records the
// backend's events in the decision log meanwhile.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, stop := s.b.Subscribe()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for e := range events {
			s.links.Observe(e)
			s.events.add(entryOf(e))
		}
	}()
	defer func() { stop(); <-pumped }()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.sampleLoop(ctx)
	}()
	defer func() { cancel(); <-sampled }()
	// Addr says the server is ready: it records events from now on.
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Request contexts end with ctx, so event streams end on shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	s.mu.Lock()
	s.srv, s.errc, s.retired = srv, errc, map[net.Listener]bool{}
	s.serveLocked(ln)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.srv, s.ln = nil, nil
		s.mu.Unlock()
	}()
	s.log.Info("api listening", "addr", ln.Addr().Network()+":"+ln.Addr().String(), "token", s.auth.Load().token != "")
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// serveLocked serves on ln (the listener in use from now on) in a new
// goroutine; its error goes to errc unless ln was retired.
func (s *Server) serveLocked(ln net.Listener) {
	s.ln = ln
	s.addr = ln.Addr()
	srv, errc := s.srv, s.errc
	go func() {
		err := srv.Serve(ln)
		s.mu.Lock()
		expected := s.retired[ln] || errors.Is(err, http.ErrServerClosed)
		delete(s.retired, ln)
		s.mu.Unlock()
		if !expected {
			select {
			case errc <- err:
			default:
			}
		}
	}()
}

// Reconfigure applies a reload's api section: a new token is required
// from the next request on; a new listen address is bound first, then
// served, and only then is the old listener closed (requests in flight
// on it finish), so the API is never unreachable. On error nothing
// changed. History is fixed at start.
func (s *Server) Reconfigure(listen, token string) error {
	if listen == "" {
		listen = DefaultListen
	}
	auth, err := authFor(listen, token)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if listen != s.opts.Listen && s.srv != nil {
		ln, err := listenOn(listen)
		if err != nil {
			return err
		}
		old := s.ln
		s.retired[old] = true
		s.serveLocked(ln)
		old.Close()
		s.log.Info("api listening", "addr", ln.Addr().Network()+":"+ln.Addr().String(), "was", old.Addr().Network()+":"+old.Addr().String())
	}
	if token != s.auth.Load().token {
		s.log.Info("api token changed: the old one is refused from now on")
	}
	s.opts.Listen, s.opts.Token = listen, token
	s.auth.Store(auth)
	return nil
}

func (s *Server) sampleLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.SampleInterval)
	defer t.Stop()
	for {
		snap := s.b.Snapshot()
		links := make([]Link, len(snap))
		for i, st := range snap {
			links[i] = linkOf(st)
		}
		s.history.sample(time.Now(), links)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ObserveReload records the result of a config reload made elsewhere
// (SIGHUP) in the decision log and the reload metrics. The API's own
// reload endpoint records its results itself.
func (s *Server) ObserveReload(err error) {
	s.reloads.Observe(err)
	e := Entry{Time: time.Now(), Kind: "reload"}
	if err != nil {
		e.Reason = "config rejected, the old one stays in force"
		e.Error = err.Error()
	} else {
		e.Reason = "config reloaded"
		if c := s.b.Config(); c != nil {
			e.Reason = fmt.Sprintf("config reloaded from %s: %d link(s)", c.File, len(c.Links))
		}
	}
	s.events.add(e)
}

// Record adds a decision made elsewhere (a BGP announcement change, kind
// "bgp") to the decision log, for GET /api/v1/events and the stream.
func (s *Server) Record(e Entry) {
	s.events.add(e)
}

// splitListen parses an Options.Listen value.
func splitListen(l string) (network, address string, err error) {
	if p, ok := strings.CutPrefix(l, "unix:"); ok {
		if p == "" || !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("api: listen %q: the socket path must be absolute", l)
		}
		return "unix", p, nil
	}
	if _, _, err := net.SplitHostPort(l); err != nil {
		return "", "", fmt.Errorf("api: listen %q: want unix:/path or host:port: %w", l, err)
	}
	return "tcp", l, nil
}

// isLoopback reports whether a TCP listen address is loopback only. An
// empty host (all addresses) is not; a name other than localhost is not
// trusted to be.
func isLoopback(hostport string) (bool, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, fmt.Errorf("api: listen %q: %w", hostport, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
