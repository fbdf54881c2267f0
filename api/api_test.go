package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// httpClient returns a plain HTTP client for addr as apitest.Start gives
// it, and the base URL to use with it.
func httpClient(t *testing.T, addr string) (*http.Client, string) {
	t.Helper()
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}}, "http://multihome"
	}
	return &http.Client{Timeout: 5 * time.Second}, "http://" + addr
}

func TestEndpoints(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	hc, base := httpClient(t, addr)

	tests := []struct {
		method, path, body string
		code               int
		want               []string // substrings of the answer
		call               *apitest.Call
	}{
		{"GET", "/api/v1/status", "", 200, []string{`"health": "degraded"`, `"links": 3`, `"healthy": 2`, `"usable": 3`, `"link": "lte"`, `"targets_total": 2`}, nil},
		{"GET", "/api/v1/links", "", 200, []string{`"link": "fiber"`, `"link": "cable"`, `"state": "degraded"`, `"last_error": "timeout"`, `"accepts_new": true`}, nil},
		{"GET", "/api/v1/links/cable", "", 200, []string{`"link": "cable"`, `"interface": "wan2"`, `"rtt_ns": 21000000`}, nil},
		{"GET", "/api/v1/links/nope", "", 404, []string{`"error": "no link named \"nope\""`}, nil},
		{"HEAD", "/api/v1/links", "", 200, nil, nil},
		{"GET", "/api/v1/events?limit=0", "", 400, []string{`"error": "limit: want a positive integer`}, nil},
		{"GET", "/api/v1/events?since=x", "", 400, []string{`"error"`}, nil},
		{"GET", "/api/v1/events?limit=5", "", 200, []string{`"events": [`}, nil},
		{"GET", "/api/v1/history", "", 200, []string{`"interval_ms": 2000`, `"fiber": [`}, nil},
		{"GET", "/api/v1/config", "", 200, []string{`"links": [`, `"name": "fiber"`, `"interval": "200ms"`, `"threshold": "90%"`}, nil},
		{"POST", "/api/v1/links/fiber/drain", `{"reason":"maintenance window"}`, 200, []string{`"admin": "drain"`, `"accepts_new": false`},
			&apitest.Call{Link: "fiber", Admin: monitor.AdminDrain, Reason: "maintenance window (via API)"}},
		{"POST", "/api/v1/links/cable/down?reason=swap%20modem", "", 200, []string{`"admin": "down"`, `"state": "down"`},
			&apitest.Call{Link: "cable", Admin: monitor.AdminDown, Reason: "swap modem (via API)"}},
		{"POST", "/api/v1/links/cable/up", "", 200, []string{`"admin": "none"`, `"state": "up"`},
			&apitest.Call{Link: "cable", Admin: monitor.AdminNone, Reason: "via API"}},
		{"POST", "/api/v1/links/nope/down", "", 404, []string{`no link named`}, nil},
		{"POST", "/api/v1/links/fiber/explode", "", 404, []string{`no action \"explode\"`}, nil},
		{"POST", "/api/v1/links/fiber/down", `{"reason":`, 400, []string{`"error": "body:`}, nil},
		{"POST", "/api/v1/links/fiber/down", `{"reason":"` + strings.Repeat("x", 201) + `"}`, 400, []string{`longer than 200`}, nil},
		{"GET", "/api/v1/links/fiber/down", "", 405, []string{`use POST`}, nil},
		{"DELETE", "/api/v1/status", "", 405, []string{`use GET`}, nil},
		{"GET", "/api/v1/nothing", "", 404, []string{`no such endpoint`}, nil},
		{"POST", "/api/v1/reload", "", 200, []string{`"file": "multihome.yaml"`, `"links": 3`}, nil},
		{"GET", "/metrics", "", 200, []string{`multihome_link_state{link="fiber",state="up"} 1`, `multihome_config_reloads_total{result="success"} 1`, `go_goroutines`}, nil},
		{"GET", "/", "", 200, []string{`<!doctype html>`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, base+tc.path, body)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(tc.path, "/api/") && ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			for _, w := range tc.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("answer lacks %s:\n%s", w, b)
				}
			}
			if tc.call != nil {
				c, err := f.WaitCall(time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if c != *tc.call {
					t.Errorf("SetAdmin(%+v), want %+v", c, *tc.call)
				}
			}
		})
	}
	if n := len(f.Calls()); n != 3 {
		t.Errorf("%d SetAdmin calls, want 3", n)
	}
}

func TestReloadRejected(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	c, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, perr := config.Parse("bad.yaml", []byte("links:\n  - name: a\n    interfac: wan1\n"))
	if perr == nil {
		t.Fatal("the bad config parsed")
	}
	f.SetReloadError(perr)
	_, err = c.Reload(ctx)
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusUnprocessableEntity || len(ae.Errors) == 0 {
		t.Fatalf("reload error %#v, want a 422 listing the config errors", err)
	}
	if !strings.Contains(ae.Msg, "old one stays in force") || !strings.Contains(ae.Errors[0], "bad.yaml:3:5") {
		t.Errorf("reload error %q %q", ae.Msg, ae.Errors)
	}
	f.SetReloadError(nil)
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Events(ctx, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 2 || ev.Events[0].Kind != "reload" || ev.Events[0].Error == "" || ev.Events[1].Error != "" {
		t.Errorf("decision log after a bad and a good reload: %+v", ev.Events)
	}
	hc, base := httpClient(t, addr)
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`multihome_config_reloads_total{result="failure"} 1`, `multihome_config_reloads_total{result="success"} 1`, `multihome_config_last_reload_successful 1`} {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

func TestEventStream(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{KeepAlive: 50 * time.Millisecond})
	c, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Connected before the event: a raw stream, to see the wire format.
	hc, base := httpClient(t, addr)
	hc.Timeout = 0
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events/stream", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			got <- string(buf[:n])
			if err != nil {
				close(got)
				return
			}
		}
	}()
	var text strings.Builder
	waitFor := func(s string) {
		t.Helper()
		for !strings.Contains(text.String(), s) {
			select {
			case chunk, ok := <-got:
				if !ok {
					t.Fatalf("stream ended without %q:\n%s", s, text.String())
				}
				text.WriteString(chunk)
			case <-ctx.Done():
				t.Fatalf("no %q in the stream:\n%s", s, text.String())
			}
		}
	}
	waitFor(": multihome event stream")
	waitFor(": keep-alive")

	f.Update("fiber", "3 rounds with 0/3 targets answering (quorum 1)", func(s *monitor.Status) {
		s.State, s.Health, s.TargetsUp = monitor.Down, monitor.Down, 0
	})
	waitFor("\n\n")
	waitFor(`"reason":"3 rounds with 0/3 targets answering (quorum 1)"`)
	for _, w := range []string{"\nid: ", "event: entry\n", `"kind":"state"`, `"from":"up"`, `"to":"down"`, `"link":"fiber"`} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("stream lacks %q:\n%s", w, text.String())
		}
	}

	// The client library: replay from the ring, then live.
	entries := make(chan api.Entry, 10)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go c.Stream(sctx, 0, "", true, func(e api.Entry) error { entries <- e; return nil })
	e := <-entries
	first := e.Seq
	if e.Link != "fiber" || e.To != "down" || e.Status == nil || e.Status.State != "down" {
		t.Errorf("replayed entry %+v", e)
	}
	if !strings.Contains(text.String(), fmt.Sprintf("id: %d\n", first)) {
		t.Errorf("stream has no id: %d:\n%s", first, text.String())
	}
	f.Update("fiber", "5 rounds with 3/3 targets answering", func(s *monitor.Status) {
		s.State, s.Health, s.TargetsUp = monitor.Up, monitor.Up, 3
	})
	select {
	case e := <-entries:
		if e.Seq != first+1 || e.To != "up" {
			t.Errorf("live entry %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no live entry")
	}
	// Filtered by link: the stream skips other links' entries.
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	only := make(chan api.Entry, 10)
	go c.Stream(lctx, 0, "cable", false, func(e api.Entry) error { only <- e; return nil })
	f.Update("cable", "carrier lost", func(s *monitor.Status) { s.State = monitor.Down })
	if e := <-only; e.Link != "cable" || e.Seq != first+2 {
		t.Errorf("filtered entry %+v", e)
	}

	ev, err := c.Events(ctx, 2, "fiber")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 2 || ev.Last != first+2 || ev.Events[1].Seq != first+1 {
		t.Errorf("events: %+v", ev)
	}

	// A client that knew a daemon from before a restart (a seq above the
	// newest) gets everything there is.
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	all := make(chan api.Entry, 10)
	go c.Stream(fctx, first+1000, "", false, func(e api.Entry) error { all <- e; return nil })
	if e := <-all; e.Seq != first {
		t.Errorf("stream from a future seq starts with %d, want %d", e.Seq, first)
	}
}

func TestToken(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	const token = "s3cret-token"
	_, addr := apitest.Start(t, f, api.Options{Listen: "127.0.0.1:0", Token: token})
	hc, base := httpClient(t, addr)
	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/api/v1/status", "", 401},
		{"/api/v1/status", "Bearer wrong", 401},
		{"/api/v1/status", "Basic " + token, 401},
		{"/api/v1/status", "Bearer " + token, 200},
		{"/metrics", "", 401},
		{"/metrics", "Bearer " + token, 200},
		{"/api/v1/nothing", "", 401}, // no probing for endpoints either
		{"/", "", 200},               // the page itself asks for the token
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s with %q: %d, want %d: %s", tc.path, tc.auth, resp.StatusCode, tc.code, b)
		}
		if tc.code == 401 && (resp.Header.Get("WWW-Authenticate") == "" || !bytes.Contains(b, []byte(`"error"`))) {
			t.Errorf("GET %s with %q: 401 without WWW-Authenticate or JSON error", tc.path, tc.auth)
		}
	}
	c, _ := api.NewClient(addr, "wrong")
	_, err := c.Action(context.Background(), "fiber", "down", "")
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Code != 401 || ae.Msg != "invalid token" {
		t.Errorf("action with a wrong token: %v", err)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d SetAdmin calls with a wrong token", n)
	}
	c, _ = api.NewClient(addr, token)
	if _, err := c.Action(context.Background(), "fiber", "down", ""); err != nil {
		t.Errorf("action with the token: %v", err)
	}
}

func TestListenChecks(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	for _, tc := range []struct {
		listen, token string
		err           string // substring; "" for success
	}{
		{"0.0.0.0:9180", "", "without a token"},
		{":9180", "", "without a token"},
		{"[::]:9180", "", "without a token"},
		{"192.0.2.1:9180", "", "without a token"},
		{"gateway.example:9180", "", "without a token"},
		{"0.0.0.0:9180", "t", ""},
		{"127.0.0.1:9180", "", ""},
		{"[::1]:9180", "", ""},
		{"localhost:9180", "", ""},
		{"unix:/run/multihome/api.sock", "", ""},
		{"", "", ""},
		{"unix:api.sock", "", "must be absolute"},
		{"9180", "", "want unix:/path or host:port"},
	} {
		_, err := api.New(f, api.Options{Listen: tc.listen, Token: tc.token}, nil)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("listen %q token %q: %v", tc.listen, tc.token, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("listen %q token %q: error %v, want %q", tc.listen, tc.token, err, tc.err)
		}
	}
}

func TestLoopbackGuards(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{Listen: "127.0.0.1:0"})
	hc, base := httpClient(t, addr)
	do := func(method, path string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// DNS rebinding: a page at evil.example resolving to 127.0.0.1.
	if c := do("GET", "/api/v1/status", map[string]string{"Host": "evil.example"}); c != 403 {
		t.Errorf("foreign Host: %d, want 403", c)
	}
	if c := do("GET", "/api/v1/status", map[string]string{"Host": "localhost:9180"}); c != 200 {
		t.Errorf("Host localhost: %d, want 200", c)
	}
	// A cross-site form post from a browser.
	if c := do("POST", "/api/v1/links/fiber/down", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); c != 403 {
		t.Errorf("cross-site POST: %d, want 403", c)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d SetAdmin calls from rejected requests", n)
	}
	if c := do("POST", "/api/v1/links/fiber/down", map[string]string{"Sec-Fetch-Site": "same-origin"}); c != 200 {
		t.Errorf("same-origin POST: %d, want 200", c)
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "mh-sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sub", "api.sock")
	f := apitest.NewFake(apitest.Links()...)
	// A stale socket file from a crashed daemon is replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	s, err := api.New(f, api.Options{Listen: "unix:" + path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c, _ := api.NewClient("unix:"+path, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err = c.Status(ctx); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket mode %v, want 0660", perm)
	}
	// A second server on a live socket refuses to start.
	s2, _ := api.New(f, api.Options{Listen: "unix:" + path}, nil)
	if err := s2.Run(ctx); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second server on a live socket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
}

// TestShutdownEndsStreams: an open event stream does not hold up shutdown.
func TestShutdownEndsStreams(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	s, err := api.New(f, api.Options{Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	c, _ := api.NewClient(ln.Addr().String(), "")
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- c.Stream(context.Background(), 0, "", false, func(api.Entry) error { return nil })
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("server still running 3s after cancel with a stream open")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	select {
	case <-streamErr:
	case <-time.After(3 * time.Second):
		t.Error("stream still open after shutdown")
	}
}

// TestLinkMirrorsStatus: api.Link carries every field of monitor.Status
// under the same JSON name, so nothing the monitor reports is lost.
func TestLinkMirrorsStatus(t *testing.T) {
	keys := func(v any) map[string]bool {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		out := map[string]bool{}
		for k := range m {
			out[k] = true
		}
		return out
	}
	st := apitest.Links()[2]
	mon, ours := keys(st), keys(api.Link{})
	for k := range mon {
		if !ours[k] {
			t.Errorf("api.Link lacks monitor.Status's %q", k)
		}
	}
	tk, otk := keys(st.Targets[1]), keys(api.Target{LastError: "x"})
	for k := range tk {
		if !otk[k] {
			t.Errorf("api.Target lacks monitor.TargetStatus's %q", k)
		}
	}
}
