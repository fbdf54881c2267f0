package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/web"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
	// Errors lists every problem when there are several (a rejected
	// config).
	Errors []string `json:"errors,omitempty"`
}

// ReloadResult is the answer of a successful POST /api/v1/reload.
type ReloadResult struct {
	File  string `json:"file"`
	Links int    `json:"links"`
}

// actions maps the action of POST /api/v1/links/{name}/{action} to the
// override it sets.
var actions = map[string]monitor.Admin{
	"down":  monitor.AdminDown,
	"drain": monitor.AdminDrain,
	"up":    monitor.AdminNone,
	"clear": monitor.AdminNone,
}

func (s *Server) routes(metricsHandler http.Handler) http.Handler {
	api := http.NewServeMux()
	api.Handle("/api/v1/status", method("GET", s.getStatus))
	api.Handle("/api/v1/links", method("GET", s.getLinks))
	api.Handle("/api/v1/links/{name}", method("GET", s.getLink))
	api.Handle("/api/v1/links/{name}/{action}", method("POST", s.postAction))
	api.Handle("/api/v1/events", method("GET", s.getEvents))
	api.Handle("/api/v1/events/stream", method("GET", s.streamEvents))
	api.Handle("/api/v1/history", method("GET", s.getHistory))
	api.Handle("/api/v1/config", method("GET", s.getConfig))
	api.Handle("/api/v1/reload", method("POST", s.postReload))
	api.Handle("/api/v1/bgp", method("GET", s.getBGP))
	api.Handle("/api/v1/ipv6", method("GET", s.getIPv6))
	api.Handle("/api/v1/ha", method("GET", s.getHA))
	api.Handle("/api/v1/mptcp", method("GET", s.getMPTCP))
	api.Handle("/api/v1/audit", method("GET", s.getAudit))
	api.Handle("/api/v1/audit.svg", method("GET", s.getAuditSVG))
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s", r.URL.Path)
	})
	api.Handle("/metrics", metricsHandler)

	mux := http.NewServeMux()
	protected := s.authenticate(http.NewCrossOriginProtection().Handler(api))
	mux.Handle("/api/", protected)
	mux.Handle("/metrics", protected)
	mux.Handle("/", web.Handler())
	return s.checkHost(mux)
}

// method answers 405 in JSON to any other method than m (and HEAD for GET).
func method(m string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m && !(m == "GET" && r.Method == "HEAD") {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, m)
			return
		}
		h(w, r)
	})
}

// authenticate enforces the bearer token, when there is one. The token
// is read per request: Reconfigure changes it at once.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := s.auth.Load()
		if a.token == "" {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison constant-time in the length
		// of the token, too.
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.sum[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="multihome"`)
			msg := "a bearer token is required"
			if ok {
				msg = "invalid token"
			}
			writeError(w, http.StatusUnauthorized, "%s", msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkHost guards a loopback listener without a token against DNS
// rebinding: a web page whose name resolves to 127.0.0.1 must not reach
// the API, so the Host header must name a loopback host.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.auth.Load().loopbackNoToken {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		ip := net.ParseIP(host)
		if host != "localhost" && !strings.HasSuffix(host, ".localhost") && (ip == nil || !ip.IsLoopback()) {
			writeError(w, http.StatusForbidden, "host %q is not a loopback address", r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, a ...any) {
	writeJSON(w, code, Error{Error: fmt.Sprintf(format, a...)})
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, overviewOf(s.b.Snapshot(), time.Now(), s.started))
}

// LinkList is the answer of GET /api/v1/links.
type LinkList struct {
	Links []Link `json:"links"`
}

func (s *Server) getLinks(w http.ResponseWriter, r *http.Request) {
	snap := s.b.Snapshot()
	out := LinkList{Links: make([]Link, len(snap))}
	for i, st := range snap {
		out.Links[i] = linkOf(st)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) find(name string) (monitor.Status, bool) {
	for _, st := range s.b.Snapshot() {
		if st.Link == name {
			return st, true
		}
	}
	return monitor.Status{}, false
}

func (s *Server) getLink(w http.ResponseWriter, r *http.Request) {
	st, ok := s.find(r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, "no link named %q", r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, linkOf(st))
}

// ActionRequest is the optional body of POST /api/v1/links/{name}/{action}.
type ActionRequest struct {
	// Reason is logged with the decision.
	Reason string `json:"reason"`
}

func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	admin, ok := actions[action]
	if !ok {
		writeError(w, http.StatusNotFound, "no action %q: use down, drain or up", action)
		return
	}
	var req ActionRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body: %v", err)
			return
		}
	}
	if q := r.URL.Query().Get("reason"); q != "" && req.Reason == "" {
		req.Reason = q
	}
	if len(req.Reason) > 200 {
		writeError(w, http.StatusBadRequest, "reason: longer than 200 characters")
		return
	}
	req.Reason = strings.Join(strings.Fields(req.Reason), " ") // one line
	if _, ok := s.find(name); !ok {
		writeError(w, http.StatusNotFound, "no link named %q", name)
		return
	}
	// The monitor says who set what; the reason says why, and from where.
	reason := "via API"
	if req.Reason != "" {
		reason = req.Reason + " (via API)"
	}
	if err := s.b.SetAdmin(name, admin, reason); err != nil {
		s.log.Warn("link action failed", "link", name, "action", action, "err", err)
		writeError(w, http.StatusInternalServerError, "%s %s: %v", action, name, err)
		return
	}
	s.log.Info("link action", "link", name, "action", action, "admin", admin, "reason", reason, "remote", remote(r))
	st, _ := s.find(name)
	writeJSON(w, http.StatusOK, linkOf(st))
}

func remote(r *http.Request) string {
	if r.RemoteAddr == "" || r.RemoteAddr == "@" {
		return "unix"
	}
	return r.RemoteAddr
}

// EventList is the answer of GET /api/v1/events.
type EventList struct {
	Events []Entry `json:"events"`
	// Last is the seq of the newest entry in the log, to resume a stream
	// from.
	Last uint64 `json:"last"`
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a positive integer, got %q", v)
			return
		}
		limit = min(n, s.opts.History)
	}
	since, err := parseSeq(q.Get("since"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: %v", err)
		return
	}
	link := q.Get("link")
	all, _ := s.events.since(since, 0)
	out := EventList{Events: []Entry{}, Last: s.events.last()}
	for _, e := range all {
		if link == "" || e.Link == link {
			out.Events = append(out.Events, e)
		}
	}
	if len(out.Events) > limit {
		out.Events = out.Events[len(out.Events)-limit:]
	}
	writeJSON(w, http.StatusOK, out)
}

func parseSeq(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want an event seq, got %q", v)
	}
	return n, nil
}

// streamEvents serves the decision log as server-sent events: one "entry"
// event per Entry (id: its seq, data: its JSON), from the entry after
// ?since= or Last-Event-ID (replayed from the ring), else from now on;
// a comment every KeepAlive. Every stream writes the frames the decision
// log encoded once per entry; a client that stops reading is dropped
// after StreamWriteTimeout (streamWriter).
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	from := r.URL.Query().Get("since")
	if from == "" {
		from = r.Header.Get("Last-Event-ID")
	}
	seq, err := parseSeq(from)
	if err != nil {
		writeError(w, http.StatusBadRequest, "since: %v", err)
		return
	}
	switch last := s.events.last(); {
	case from == "":
		seq = last
	case seq > last:
		// A seq from the future: the client's clock of seqs is another
		// daemon's. Replay what there is.
		seq = 0
	}
	link := r.URL.Query().Get("link")
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.WriteString(w, "retry: 2000\n: multihome event stream\n\n"); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	keep := time.NewTicker(s.opts.KeepAlive)
	defer keep.Stop()
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve more requests
	sw := &streamWriter{w: w, rc: rc, timeout: s.opts.StreamWriteTimeout}
	var batch [][]byte
	replay := true
	for {
		var last, lost uint64
		var wake <-chan struct{}
		batch, last, lost, wake = s.events.frames(seq, link, batch[:0])
		switch {
		case lost > 0 && !replay:
			// Its writes were slow enough for the ring to wrap: it
			// skips ahead, told so in a comment (Client.Skipped;
			// browsers ignore comments).
			bound.Dropped(StreamQueue, int(min(lost, 1<<31)), "event stream client fell a whole decision log behind: skipped ahead")
			fallthrough
		case lost > 0 && seq > 0:
			// A resumed stream whose entries the ring no longer holds
			// (counted when they were dropped, if by this server).
			batch = slices.Insert(batch, 0, fmt.Appendf(nil, ": skipped %d entries\n\n", lost))
		}
		replay = false
		seq = last
		if len(batch) > 0 && !sw.write(batch) {
			return
		}
		clear(batch) // drop references to frames the ring may let go
		select {
		case <-r.Context().Done():
			return
		case <-wake:
		case <-keep.C:
			if !sw.write([][]byte{keepAlive}) {
				return
			}
		}
	}
}

var keepAlive = []byte(": keep-alive\n\n")

// StreamQueue is the bound.Dropped queue of the event streams: entries a
// stream client did not get because it stopped reading (its stream is
// closed after Options.StreamWriteTimeout) or fell a whole decision log
// behind (it skips ahead).
const StreamQueue = "api.stream"

// streamWriter writes one event stream within StreamWriteTimeout. A
// client that takes nothing in time is dropped (counted, its stream
// closed): its writes never hold up other streams, the decision log or
// the daemon.
type streamWriter struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	deadline time.Time // the connection's write deadline
}

// write writes and flushes frames. The connection's deadline is moved
// only when less than half the timeout is left, not on every event
// (moving it costs a timer update per client per event): each write is
// bounded by between half the timeout and the timeout.
func (sw *streamWriter) write(frames [][]byte) bool {
	if now := time.Now(); sw.deadline.Sub(now) < sw.timeout/2 {
		sw.deadline = now.Add(sw.timeout)
		// A ResponseWriter that cannot set one: the write is still
		// this stream's alone.
		_ = sw.rc.SetWriteDeadline(sw.deadline)
	}
	var err error
	for _, f := range frames {
		if _, err = sw.w.Write(f); err != nil {
			break
		}
	}
	if err == nil {
		err = sw.rc.Flush()
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			bound.Dropped(StreamQueue, len(frames), fmt.Sprintf("event stream client took nothing for at least %v: closed its stream", sw.timeout/2))
		}
		return false
	}
	return true
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, History{
		IntervalMS: s.opts.SampleInterval.Milliseconds(),
		Samples:    s.opts.HistorySamples,
		Links:      s.history.get(r.URL.Query().Get("link")),
	})
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	b, err := configJSON(s.b.Config())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "render config: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

func (s *Server) postReload(w http.ResponseWriter, r *http.Request) {
	err := s.b.ReloadFile()
	s.ObserveReload(err)
	if err != nil {
		s.log.Warn("reload via API rejected", "err", err, "remote", remote(r))
		e := Error{Error: "config rejected, the old one stays in force: " + err.Error()}
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, x := range ce {
				e.Errors = append(e.Errors, x.Error())
			}
		}
		writeJSON(w, http.StatusUnprocessableEntity, e)
		return
	}
	s.log.Info("config reloaded via API", "remote", remote(r))
	res := ReloadResult{}
	if c := s.b.Config(); c != nil {
		res = ReloadResult{File: c.File, Links: len(c.Links)}
	}
	writeJSON(w, http.StatusOK, res)
}
