package web_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/bgp"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/web"
)

func TestAssets(t *testing.T) {
	srv := http.NewServeMux()
	srv.Handle("/", web.Handler())
	for _, tc := range []struct{ path, ctype, want string }{
		{"/", "text/html", `<script src="app.js"`},
		{"/app.js", "text/javascript", "/api/v1/events/stream"},
		{"/style.css", "text/css", "--up:"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		rec := httptest.NewRecorder()
		req, _ := http.NewRequest("GET", tc.path, nil)
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.ctype) || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.want, strings.Contains(rec.Body.String(), tc.want))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest("POST", "/", nil)
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", rec.Code)
	}
}

// browser starts a headless Chromium for the test, or skips the test when
// there is none outside CI.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("chromium is not installed (apt-get install chromium); the dashboard test needs it and runs in CI")
		}
		t.Fatal("CI is set but chromium is not installed: scripts/deps.sh must install it")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(tcancel)
	// Fail on any uncaught exception or error message in the page.
	var mu sync.Mutex
	var problems []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// The browser logs every 401 as an error: the token test
			// makes some on purpose.
			if m.IsException() || m.Type == chromedp.ConsoleError && !strings.Contains(m.Text, "status of 401") && !optional404(m) {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page console: %s", p)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// serve starts an API server for the page in ctx, and leaves the page
// (about:blank) before the server stops: a page still polling a stopped
// server logs connection errors, which browser counts as problems.
func serve(t *testing.T, ctx context.Context, b api.Backend, opts api.Options) (*api.Server, string) {
	t.Helper()
	srv, addr := apitest.Start(t, b, opts)
	t.Cleanup(func() { chromedp.Run(ctx, chromedp.Navigate("about:blank")) })
	return srv, addr
}

// optional404 is the browser's error log of a 404 from an optional view
// the page probes: a daemon without BGP (or a backend without the audit)
// answers so on purpose, and the page hides the panel.
func optional404(m chromedp.ConsoleMessage) bool {
	if !strings.Contains(m.Text, "status of 404") {
		return false
	}
	for _, p := range []string{"/api/v1/bgp", "/api/v1/ipv6", "/api/v1/mptcp", "/api/v1/audit", "/api/v1/audit.svg"} {
		if strings.HasSuffix(m.URL, p) {
			return true
		}
	}
	return false
}

// artifacts is where screenshots go: $MULTIHOME_ARTIFACTS, else a fixed
// directory under the system's temporary directory.
func artifacts(t *testing.T) string {
	dir := os.Getenv("MULTIHOME_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "multihome-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shoot(t, ctx, name, chromedp.CaptureScreenshot())
}

// fullScreenshot captures the whole page, below the fold too.
func fullScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shoot(t, ctx, name, chromedp.FullScreenshot(100))
}

func shoot(t *testing.T, ctx context.Context, name string, a chromedp.Action[[]byte]) {
	t.Helper()
	png, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// jiggle makes the fake's measurements move like a live network's until
// ctx ends.
func jiggle(ctx context.Context, f *apitest.Fake) {
	base := map[string]monitor.Status{}
	for _, s := range f.Snapshot() {
		base[s.Link] = s
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		x := time.Since(start).Seconds()
		for name, b := range base {
			phase := float64(len(name))
			f.Update(name, "", func(s *monitor.Status) {
				if s.State == monitor.Down {
					s.RTT, s.Loss, s.RateDown, s.RateUp, s.UtilDown, s.UtilUp = 0, 1, 0, 0, 0, 0
					return
				}
				w := 1 + 0.25*math.Sin(x*0.9+phase) + 0.15*r.NormFloat64()
				s.RTT = time.Duration(float64(b.RTT) * max(0.5, w))
				s.Loss = max(0, b.Loss*(1+0.6*math.Sin(x*1.7+phase)+0.3*r.NormFloat64()))
				u := 1 + 0.35*math.Sin(x*0.6+phase*2) + 0.1*r.NormFloat64()
				s.UtilDown = min(1, max(0, b.UtilDown*u))
				s.UtilUp = min(1, max(0, b.UtilUp*(2-u)))
				s.RateDown = uint64(float64(b.RateDown) * max(0, u))
				s.RateUp = uint64(float64(b.RateUp) * max(0, 2-u))
			})
		}
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// until waits up to timeout for a JavaScript expression to be true.
func until(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

func TestDashboard(t *testing.T) {
	ctx := browser(t)

	links := apitest.Links()
	links[2].State, links[2].Health = monitor.Up, monitor.Up // lte degrades below, with an event
	f := apitest.NewFake(links...)
	sf := apitest.WithStatus(f, apitest.Neighbors()...)
	sf.SetIPv6(true, apitest.IPv6())
	srv, addr := serve(t, ctx, sf, api.Options{Listen: "127.0.0.1:0", SampleInterval: 250 * time.Millisecond, HistorySamples: 24})
	jctx, jcancel := context.WithCancel(context.Background())
	defer jcancel()
	go jiggle(jctx, f)

	// Some history before the page opens: a reload and lte degrading.
	srv.ObserveReload(nil)
	f.Update("lte", "loss 12% over 10s ≥ 10%", func(s *monitor.Status) { s.State, s.Health = monitor.Degraded, monitor.Degraded })
	time.Sleep(4 * time.Second) // sparklines have something to show

	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(`[data-link="lte"] .state`),
		until(`document.querySelector('#live').dataset.live === 'on'`, 5*time.Second),
	); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	fiber, cable, lte := text(t, ctx, `[data-link="fiber"] .state`), text(t, ctx, `[data-link="cable"] .state`), text(t, ctx, `[data-link="lte"] .state`)
	if fiber != "up" || cable != "up" || lte != "degraded" {
		t.Errorf("cards show fiber %q, cable %q, lte %q; want up, up, degraded", fiber, cable, lte)
	}
	if o := text(t, ctx, `#overall-text`); o != "Degraded: 2 of 3 up" {
		t.Errorf("overall %q", o)
	}
	if log := text(t, ctx, `#events tbody`); !strings.Contains(log, "loss 12% over 10s ≥ 10%") || !strings.Contains(log, "config reloaded") {
		t.Errorf("decision log shows %q", log)
	}
	// The BGP panel: one row per neighbour, in the fake's order.
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`#bgp-panel tr[data-neighbor="203.0.113.1"]`),
		chromedp.WaitVisible(`#findings [data-check="probe-gateway-only"]`),
		until(`document.querySelector('#audit-svg').complete && document.querySelector('#audit-svg').naturalWidth > 0`, 5*time.Second),
	); err != nil {
		t.Fatalf("the BGP and audit panels: %v", err)
	}
	if rows := text(t, ctx, `#bgp tbody`); !strings.Contains(rows, "198.51.100.1") || !strings.Contains(rows, "AS64501") ||
		!strings.Contains(rows, "2001:db8:ff::1") || !strings.Contains(rows, "hold timer expired") {
		t.Errorf("BGP rows %q", rows)
	}
	if r := text(t, ctx, `#bgp tr[data-neighbor="203.0.113.1"]`); !strings.Contains(r, "cable") || !strings.Contains(r, "established") || !strings.Contains(r, "prepended ×3") {
		t.Errorf("cable's neighbour row %q", r)
	}
	if r := text(t, ctx, `#bgp tr[data-neighbor="2001:db8:ff::1"]`); !strings.Contains(r, "active") || !strings.Contains(r, "withdrawn") {
		t.Errorf("lte's neighbour row %q", r)
	}
	if c := text(t, ctx, `#bgp-count`); c != "2 of 3 established" {
		t.Errorf("BGP count %q", c)
	}
	// The IPv6 panel: fiber's and cable's prefixes preferred, lte's
	// delegation pending, the firewall set ok.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`#ipv6-panel tr[data-prefix="2001:db8:2:100::/64"]`)); err != nil {
		t.Fatalf("the IPv6 panel: %v", err)
	}
	for sel, want := range map[string][]string{
		`#ipv6 tr[data-prefix="2001:db8:1:100::/64"]`: {"fiber", "static", "preferred", "30m", "60m"},
		`#ipv6 tr[data-prefix="2001:db8:2:100::/64"]`: {"cable", "dhcpv6-pd", "preferred", "renew in 30m", "valid in 2h"},
		`#ipv6 tr[data-link="lte"]`:                   {"pending", "no delegation yet"},
		`#ipv6-count`:                                 {"sadr on lan0: 2 of 3 preferred"},
		`#ipv6-sets [data-set="inet filter lan6"]`:    {"2001:db8:1:100::/64, 2001:db8:2:100::/64", "ok"},
	} {
		r := text(t, ctx, sel)
		for _, w := range want {
			if !strings.Contains(r, w) {
				t.Errorf("%s shows %q, want %q in it", sel, r, w)
			}
		}
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#ipv6 tr[data-state="preferred"] .v6-preferred').length`)); err != nil || n != 2 {
		t.Errorf("%d preferred prefixes coloured as such (%v), want 2", n, err)
	}
	if fd := text(t, ctx, `#findings [data-check="probe-gateway-only"]`); !strings.Contains(fd, "medium") || !strings.Contains(fd, "only probes its gateway") || !strings.Contains(fd, "probe targets beyond the provider") {
		t.Errorf("audit finding %q", fd)
	}
	if s := text(t, ctx, `#audit-sum`); !strings.Contains(s, "3 medium") || !strings.Contains(s, "single point of failure") {
		t.Errorf("audit summary %q", s)
	}
	time.Sleep(2 * time.Second) // a few polls into the sparklines
	screenshot(t, ctx, "dashboard-initial.png")
	fullScreenshot(t, ctx, "dashboard-full.png")

	// A link goes down: the card says so within a few seconds, and so
	// does its BGP neighbour (refreshed on the event).
	reason := "3 rounds with 0/2 targets answering (quorum 1)"
	sf.UpdatePrefix("cable", func(p *api.IPv6Prefix) {
		p.State, p.Reason, p.PreferredLifetime = api.IPv6Deprecated, "link down", 0
	})
	sf.UpdateNeighbor("cable", func(n *bgp.NeighborStatus) {
		n.State, n.Since, n.Reason = "idle", time.Now(), "BFD up→down: control detection time expired"
		n.Announced, n.Withdrawn, n.Prepend, n.PrefixesSent, n.PrefixesReceived = false, true, 0, 0, 0
	})
	f.Update("cable", reason, func(s *monitor.Status) {
		s.State, s.Health, s.TargetsUp = monitor.Down, monitor.Down, 0
		for i := range s.Targets {
			s.Targets[i].Up, s.Targets[i].LastError = false, "timeout"
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx, until(`document.querySelector('[data-link="cable"]').dataset.state === 'down' &&
		document.querySelector('[data-link="cable"] .state').textContent === 'down'`, 5*time.Second)); err != nil {
		t.Fatalf("the cable card does not show down: %v", err)
	}
	t.Logf("down shown %v after the event", time.Since(start).Round(time.Millisecond))
	// One evaluation reads state and text together: the table is
	// re-rendered on every event, so a node found in one step may be gone
	// in the next.
	if err := chromedp.Do(ctx, until(`(() => {
		const r = document.querySelector('#bgp tr[data-neighbor="203.0.113.1"]');
		return r && r.dataset.state === 'idle' && r.textContent.includes('withdrawn') && r.textContent.includes('control detection time expired');
	})()`, 5*time.Second)); err != nil {
		r, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('#bgp tr[data-neighbor="203.0.113.1"]') || {}).textContent || ''`))
		t.Fatalf("the cable neighbour row does not show idle, withdrawn and the BFD reason: %v; row %q", err, r)
	}
	// Its IPv6 prefix is deprecated (refreshed on the same event).
	if err := chromedp.Do(ctx, until(`(() => {
		const r = document.querySelector('#ipv6 tr[data-prefix="2001:db8:2:100::/64"]');
		return r && r.dataset.state === 'deprecated' && !!r.querySelector('.v6-deprecated') && r.textContent.includes('link down') &&
			document.querySelector('#ipv6 tr[data-prefix="2001:db8:1:100::/64"]').dataset.state === 'preferred';
	})()`, 5*time.Second)); err != nil {
		r, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('#ipv6 tr[data-prefix="2001:db8:2:100::/64"]') || {}).textContent || ''`))
		t.Fatalf("cable's IPv6 prefix does not show deprecated: %v; row %q", err, r)
	}
	if c := text(t, ctx, `#ipv6-count`); c != "sadr on lan0: 1 of 3 preferred" {
		t.Errorf("IPv6 count %q", c)
	}
	if first := text(t, ctx, `#events tbody tr:first-child`); !strings.Contains(first, "cable") || !strings.Contains(first, reason) {
		t.Errorf("newest decision log row %q", first)
	}
	// A hold (BGP require_default) shows as a badge with its source.
	f.Update("cable", reason, func(s *monitor.Status) {
		s.Holds = []string{"bgp neighbor 203.0.113.1 require_default: no default route"}
	})
	if err := chromedp.Do(ctx, until(`[...document.querySelectorAll('[data-link="cable"] .pill')].some((b) =>
		b.textContent === 'held down' && b.title.includes('require_default: no default route'))`, 5*time.Second)); err != nil {
		t.Errorf("the cable card shows no held-down badge: %v", err)
	}

	// Drain fiber from its card.
	if err := chromedp.Do(ctx,
		chromedp.Click(`[data-link="fiber"] button[data-action="drain"]`),
		chromedp.WaitVisible(`#action-dialog[open] #action-reason`),
		chromedp.SendKeys(`#action-reason`, "ISP maintenance"),
		chromedp.Click(`#action-ok`),
	); err != nil {
		t.Fatalf("drain fiber: %v", err)
	}
	c, err := f.WaitCall(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := (apitest.Call{Link: "fiber", Admin: monitor.AdminDrain, Reason: "ISP maintenance (via API)"}); c != want {
		t.Errorf("SetAdmin(%+v), want %+v", c, want)
	}
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`[data-link="fiber"] .badge-drain`),
		until(`document.querySelector('[data-link="fiber"] button[data-action="drain"]').disabled`, 5*time.Second),
	); err != nil {
		t.Fatalf("fiber card does not show the drain: %v", err)
	}
	time.Sleep(1500 * time.Millisecond) // the toast and the new log rows settle
	screenshot(t, ctx, "dashboard.png")
	fullScreenshot(t, ctx, "dashboard-full-after.png")
}

func TestDashboardToken(t *testing.T) {
	ctx := browser(t)
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...), apitest.Neighbors()...)
	_, addr := serve(t, ctx, f, api.Options{Listen: "127.0.0.1:0", Token: "let-me-in"})
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(`#token-dialog[open] #token-input`),
		chromedp.SendKeys(`#token-input`, "let-me-in"),
		chromedp.Click(`#token-ok`),
		chromedp.WaitVisible(`[data-link="fiber"] .state`),
		until(`document.querySelector('#live').dataset.live === 'on'`, 5*time.Second),
	); err != nil {
		t.Fatalf("dashboard with a token: %v", err)
	}
	if s := text(t, ctx, `[data-link="fiber"] .state`); s != "up" {
		t.Errorf("fiber shows %q", s)
	}
	// The optional views use the token too; the audit picture, which an
	// <img> cannot fetch with a header, comes as a blob.
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`#bgp tr[data-neighbor="198.51.100.1"]`),
		chromedp.WaitVisible(`#findings [data-check="probe-gateway-only"]`),
		until(`document.querySelector('#audit-svg').src.startsWith('blob:') && document.querySelector('#audit-svg').naturalWidth > 0`, 5*time.Second),
	); err != nil {
		t.Fatalf("BGP and audit panels with a token: %v", err)
	}
	// The token is kept: after a reload the page needs no prompt.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(`[data-link="fiber"] .state`)); err != nil {
		t.Fatal(err)
	}
	open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#token-dialog').open`))
	if err != nil {
		t.Fatal(err)
	}
	if open {
		t.Error("token asked again after a reload")
	}
}

// A daemon without BGP and without the audit: the page probes, gets 404s
// and shows neither panel.
func TestDashboardWithoutOptional(t *testing.T) {
	ctx := browser(t)
	f := apitest.NewFake(apitest.Links()...)
	_, addr := serve(t, ctx, f, api.Options{Listen: "127.0.0.1:0"})
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(`[data-link="fiber"] .state`),
		until(`document.querySelector('#live').dataset.live === 'on'`, 5*time.Second),
	); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // a poll or two
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#bgp-panel').hidden && document.querySelector('#ipv6-panel').hidden && document.querySelector('#mptcp-panel').hidden && document.querySelector('#audit-panel').hidden`))
	if err != nil {
		t.Fatal(err)
	}
	if !hidden {
		t.Error("BGP, IPv6, MPTCP or audit panel shown without BGP, ipv6, mptcp or audit")
	}
}

// TestDashboardMPTCP: the MPTCP panel shows each link's mode and why,
// and every endpoint with its flags and link (the operator's marked),
// and follows a change on the next event.
func TestDashboardMPTCP(t *testing.T) {
	ctx := browser(t)
	f := apitest.NewFake(apitest.Links()...)
	sf := apitest.WithStatus(f)
	sf.SetBGP(false)
	sf.SetMPTCP(true, apitest.MPTCP())
	_, addr := serve(t, ctx, sf, api.Options{Listen: "127.0.0.1:0"})
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(`#mptcp-panel tr[data-id="102"]`),
		until(`document.querySelector('#live').dataset.live === 'on'`, 5*time.Second),
	); err != nil {
		t.Fatalf("the MPTCP panel: %v", err)
	}
	for sel, want := range map[string][]string{
		`#mptcp-links tr[data-link="fiber"]`: {"fiber", "up", "subflow", "100 101"},
		`#mptcp-links tr[data-link="cable"]`: {"cable", "degraded", "backup", "102", "degraded"},
		`#mptcp-links tr[data-link="lte"]`:   {"lte", "down", "none", "—", "link down"},
		`#mptcp tr[data-id="1"]`:             {"192.0.2.1", "signal", "operator", "—"},
		`#mptcp tr[data-id="101"]`:           {"2001:db8:1::2", "subflow", "fiber", "wan1"},
		`#mptcp tr[data-id="102"]`:           {"203.0.113.2", "subflow backup", "cable", "wan2"},
		`#mptcp-count`:                       {"1 of 3 links for subflows, limits: 4 subflows, 4 addresses accepted"},
	} {
		r := text(t, ctx, sel)
		for _, w := range want {
			if !strings.Contains(r, w) {
				t.Errorf("%s shows %q, want %q in it", sel, r, w)
			}
		}
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#mptcp tbody tr').length`)); err != nil || n != 4 {
		t.Errorf("%d endpoint rows (%v), want 4", n, err)
	}
	if hidden, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#mptcp-error').hidden`)); !hidden {
		t.Error("an error shown without one")
	}

	// cable recovers: its endpoint loses backup; a failed add is shown.
	st := apitest.MPTCP()
	st.Links[1].State, st.Links[1].Mode, st.Links[1].Reason = "up", "subflow", ""
	st.Endpoints[3].Flags = []string{"subflow"}
	st.Error = "endpoint add 198.51.100.18 id 104: no room"
	sf.SetMPTCP(true, st)
	f.Update("lte", "carrier lost", func(s *monitor.Status) { s.State, s.Health = monitor.Down, monitor.Down })
	if err := chromedp.Do(ctx, until(`document.querySelector('#mptcp-links tr[data-link="cable"]').dataset.mode === 'subflow'`, 5*time.Second)); err != nil {
		t.Fatalf("cable's mode not updated after an event: %v", err)
	}
	if r := text(t, ctx, `#mptcp tr[data-id="102"]`); strings.Contains(r, "backup") {
		t.Errorf("cable's endpoint still backup: %q", r)
	}
	if e := text(t, ctx, `#mptcp-error`); e != "last apply: endpoint add 198.51.100.18 id 104: no room" {
		t.Errorf("error line %q", e)
	}
}
