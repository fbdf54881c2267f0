// Package demo is multihome's guided demo: it builds a lab (package lab),
// runs the multihome daemon in the lab's gateway namespace, breaks the ISPs
// one by one and shows what the daemon decides, measured from outside
// (the LAN host's connections, DNS answers, the routes at the ISPs' FRR
// routers, the host's IPv6 addresses). Each scene of the script is in its
// own file (ipv6.go, bgp.go, ha.go, ...).
//
// It is a separate package, run by cmd/multihome-lab, so that the daemon's
// binary (cmd/multihome) links neither the lab nor the demo; it starts the
// daemon as a separate process from the multihome binary it is given.
package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/netns"

	mdns "github.com/miekg/dns"
)

// Options are the demo's settings (the flags of multihome-lab demo).
type Options struct {
	// Multihome is the path of the multihome binary the demo runs in the
	// gateway's namespace.
	Multihome string
	// Quick is the short, self-checking run (blackhole and repair of one
	// ISP) that fails if multihome does not react: for tests.
	Quick bool
	// Verbose also shows the daemon's own log, on stderr.
	Verbose bool
	// Listen is where the dashboard is served, in this machine's
	// namespace (loopback only); "" for none.
	Listen string
}

// demo drives a lab and the daemon running in it, and reports what the
// daemon decides.
type demo struct {
	l     *lab.Lab
	out   io.Writer
	quick bool
	api   *api.Client

	mu     sync.Mutex
	status map[string]monitor.Status
	events chan monitor.Event
	// results are the measured detection times, for the summary.
	results []string

	// flows are the LAN host's connections through the gateway: one new
	// connection every 100 ms, with the ISP the server saw it come from.
	flowMu sync.Mutex
	flows  []flow

	// addr6 are the LAN host's SLAAC addresses in isp1's and isp2's
	// prefixes.
	addr6 [2]netip.Addr
	// frr are isp1's and isp2's routers; empty when FRR is not installed.
	frr []*lab.FRR
	// multihome is the binary; aggregator the bonding scene's aggregator
	// (bond.go).
	multihome  string
	aggregator *exec.Cmd
}

type flow struct {
	at  time.Time
	isp string // "" if the connection failed
}

// lanTraffic opens a new connection from the LAN host every 100 ms until
// ctx ends, recording which ISP each one left by.
func (d *demo) lanTraffic(ctx context.Context) {
	byAddr := map[string]string{}
	for _, isp := range d.l.ISPs {
		byAddr[isp.GW.String()] = isp.Name
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		go func() {
			start := time.Now()
			c, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			ip, err := d.l.Get(c, "lan1", "", "/ip")
			f := flow{at: start}
			if err == nil {
				f.isp = byAddr[strings.TrimSpace(ip)]
			}
			d.flowMu.Lock()
			d.flows = append(d.flows, f)
			d.flowMu.Unlock()
		}()
	}
}

// dnsAnswer asks the gateway's DNS server for www.example.com from the
// Internet core, through each ISP in turn until one answers, as a resolver
// out there would.
func (d *demo) dnsAnswer() string {
	for _, isp := range d.l.ISPs {
		addrs, ttl, err := d.l.Query("core", isp.GW.String(), "www.example.com", mdns.TypeA, 300*time.Millisecond)
		if err != nil {
			continue
		}
		return fmt.Sprintf("www.example.com → %s (TTL %ds), asked via %s", strings.Join(addrs, " "), ttl, isp.Name)
	}
	return "www.example.com: no answer via any ISP"
}

// showDNS prints the gateway's DNS answers for www (A, by link health)
// and lanhost (AAAA, by the health of the links whose prefixes it has).
func (d *demo) showDNS() {
	d.say("inbound DNS: %s", d.dnsAnswer())
	d.say("inbound DNS: %s", d.aaaaAnswer())
}

// flowCount counts the LAN connections opened in [from, to) that left by
// isp, and those that failed.
func (d *demo) flowCount(from, to time.Time, isp string) (n, failed int) {
	d.flowMu.Lock()
	defer d.flowMu.Unlock()
	for _, f := range d.flows {
		if f.at.Before(from) || !f.at.Before(to) {
			continue
		}
		switch f.isp {
		case isp:
			n++
		case "":
			failed++
		}
	}
	return n, failed
}

// flowSummary describes the LAN connections opened in [from, to).
func (d *demo) flowSummary(from, to time.Time) string {
	d.flowMu.Lock()
	defer d.flowMu.Unlock()
	counts, failed, n := map[string]int{}, 0, 0
	for _, f := range d.flows {
		if f.at.Before(from) || !f.at.Before(to) {
			continue
		}
		n++
		if f.isp == "" {
			failed++
		} else {
			counts[f.isp]++
		}
	}
	if n == 0 {
		return "no LAN connections"
	}
	var parts []string
	for _, isp := range d.l.ISPs {
		parts = append(parts, fmt.Sprintf("%s %d", isp.Name, counts[isp.Name]))
	}
	return fmt.Sprintf("%d new LAN connections: %s, failed %d", n, strings.Join(parts, ", "), failed)
}

// demoPrefix starts the demo's lab names: netns.Unique(demoPrefix, "")
// records the demo's pid, so a later demo removes what a killed one left.
const demoPrefix = "mhdemo"

// Run runs the demo until its script ends, it fails, or it is
// interrupted (Ctrl-C, SIGTERM, SIGHUP, a closed stdout), and tears the
// lab down before it returns.
//
// It is over 80 lines because it is the demo's one setup sequence (lab,
// IPv6 host, FRR, config, daemon, dashboard), each step's teardown
// deferred next to it.
func Run(o Options) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo make demo)")
	}
	if fi, err := os.Stat(o.Multihome); err != nil || fi.IsDir() {
		return fmt.Errorf("the multihome binary to run: %q is not a file (%v)", o.Multihome, err)
	}
	// Ctrl-C, kill or a closed terminal: tear the lab down before exiting.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A closed output pipe (demo | head) too: with SIGPIPE caught, a write
	// to the closed stdout fails with EPIPE instead of killing the demo,
	// and outputStop cancels ctx. (The SIGPIPEs of closed sockets, e.g.
	// the saturation step's downloads, are ignored: they must not stop it.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	d := &demo{out: &outputStop{w: os.Stdout, cancel: cancel}, quick: o.Quick, status: map[string]monitor.Status{}, events: make(chan monitor.Event, 256)}
	// Leftovers of demos that were killed (their pid is dead).
	if swept, err := lab.CleanupStale(demoPrefix); len(swept) > 0 || err != nil {
		d.say("removed the namespaces of an earlier demo that was killed: %v (%v)", swept, err)
	}
	if swept, err := lab.CleanupStaleFRR(demoPrefix); len(swept) > 0 || err != nil {
		d.say("stopped the FRR routers of an earlier demo that was killed: %v (%v)", swept, err)
	}
	d.say("building the lab: a LAN host, the gateway, two ISPs and an Internet core with servers")
	l, err := lab.Up(ctx, lab.Spec{Name: netns.Unique(demoPrefix, ""), ISPs: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer func() {
		d.say("tearing the lab down")
		l.Down()
	}()
	d.l = l

	dir, err := os.MkdirTemp("", "multihome-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "multihome.yaml")
	sock := filepath.Join(dir, "api.sock")
	cfg, err := demoIPv6Config(string(examples.Lab()), l.ISPs)
	if err != nil {
		return err
	}
	if err := d.setupHost6(ctx); err != nil {
		return err
	}
	bgp, err := d.startFRR(ctx)
	if err != nil {
		return err
	}
	if bgp {
		cfg += demoBGPConfig(l.ISPs)
	}
	d.multihome = o.Multihome
	if err := d.bondStart(ctx, dir); err != nil {
		return err
	}
	defer func() {
		if d.aggregator != nil {
			d.aggregator.Process.Signal(syscall.SIGTERM)
			d.aggregator.Wait()
		}
	}()
	cfg += demoBondConfig()
	cfg += fmt.Sprintf("\n# added by the demo\napi: {listen: \"unix:%s\"}\n", sock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if d.api, err = api.NewClient("unix:"+sock, ""); err != nil {
		return err
	}
	dctx, dstop := context.WithCancel(context.Background())
	defer dstop()
	cmd := l.Run(dctx, "gw", o.Multihome, "run", "--config", cfgPath, "--events", "-")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// If the demo is killed, the daemon stops too (and removes its kernel
	// state); the next demo sweeps the namespaces and FRR routers left.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logs := io.Discard
	if o.Verbose {
		logs = prefixWriter(os.Stderr, "    [multihome] ")
	}
	cmd.Stderr = logs
	added := "an ipv6 section, mptcp and bond sections"
	if bgp {
		added += " and a bgp section"
	}
	d.say("starting multihome in the gateway's namespace %s with examples/lab.yaml and %s", l.NS("gw"), added)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- d.readEvents(stdout) }()
	defer func() {
		dstop()
		<-done
		cmd.Wait()
	}()

	if o.Listen != "" {
		url, err := serveDashboard(ctx, o.Listen, sock)
		if err != nil {
			return err
		}
		d.say("dashboard: %s (live while the demo runs)", url)
	}
	err = d.script(ctx)
	if err == nil && !o.Quick {
		err = d.haScene(ctx, dir, logs)
	}
	if err == nil {
		d.summary()
	}
	return err
}

// script is the demo's schedule of faults.
func (d *demo) script(ctx context.Context) error {
	if err := d.waitState(ctx, "isp1", monitor.Up, 10*time.Second); err != nil {
		return err
	}
	if err := d.waitState(ctx, "isp2", monitor.Up, 10*time.Second); err != nil {
		return err
	}
	if err := d.ipv6Start(ctx); err != nil {
		return err
	}
	if len(d.frr) > 0 {
		if err := d.bgpStart(ctx); err != nil {
			return err
		}
	}
	d.pause(ctx, time.Second)
	d.table()
	tctx, tstop := context.WithCancel(ctx)
	defer tstop()
	go d.lanTraffic(tctx)
	d.say("LAN host %s opens a new connection to %s every 100 ms through the gateway (weights isp1:isp2 = 2:1)", d.l.Hosts[0].Addr.Addr(), d.l.Servers.HTTP)
	d.pause(ctx, 2*time.Second)
	d.say("traffic: %s", d.flowSummary(time.Now().Add(-2*time.Second), time.Now()))
	d.showDNS()
	steps := []scriptStep{
		{"isp1", lab.Fault{Kind: lab.Blackhole}, "blackhole beyond isp1's first hop: its router answers, nothing behind it does", monitor.Down},
		{"isp2", lab.Fault{Kind: lab.Loss, LossPercent: 30}, "30% random packet loss on isp2 (each way)", monitor.Degraded},
		{"isp1", lab.Fault{Kind: lab.CarrierDown}, "isp1's cable pulled: carrier lost", monitor.Down},
	}
	if d.quick {
		steps = steps[:1]
	}
	for _, s := range steps {
		if err := d.step(ctx, s); err != nil {
			return err
		}
	}
	if !d.quick {
		if err := d.saturate(ctx); err != nil {
			return err
		}
		if err := d.bondScene(ctx); err != nil {
			return err
		}
	}
	d.table()
	return nil
}

// scriptStep is one fault of the script, restored after the link reached
// want, then waited for Up again.
type scriptStep struct {
	isp   string
	fault lab.Fault
	title string
	want  monitor.State
}

// step injects s's fault, shows multihome's decision and the traffic,
// DNS, IPv6 and BGP that follow, then repairs the link and shows the
// failback.
func (d *demo) step(ctx context.Context, s scriptStep) error {
	d.pause(ctx, 2*time.Second)
	d.say("FAULT: %s", s.title)
	at, err := d.l.Fault(s.isp, s.fault)
	if err != nil {
		return err
	}
	// A failed isp1: its IPv6 prefix deprecated on the host, the
	// site's prefix withdrawn from its BGP router.
	k := slices.IndexFunc(d.l.ISPs[:2], func(i lab.ISP) bool { return i.Name == s.isp })
	watch := s.want == monitor.Down && k == 0
	var v6c <-chan v6Result
	var bgpc <-chan bgpResult
	if watch {
		v6c = d.watchDeprecated(ctx, k, at)
		if len(d.frr) > 0 {
			bgpc = d.watchWithdrawn(ctx, k, at)
		}
	}
	e, err := d.waitEvent(ctx, s.isp, s.want, 20*time.Second)
	if err != nil {
		return err
	}
	// The kernel may report a carrier loss before Fault returns.
	took := max(e.Time.Sub(at), 0).Round(100 * time.Microsecond)
	d.say("multihome: %s is %s after %s (%s)", s.isp, s.want, took, e.Reason)
	d.record("%-12s %-8s → %-8s in %s", s.fault.String(), s.isp, s.want, took)
	if watch {
		if err := d.ipv6Down(ctx, k, s.fault.String(), v6c); err != nil {
			return err
		}
		if bgpc != nil {
			if err := d.bgpDown(ctx, k, s.fault.String(), bgpc); err != nil {
				return err
			}
		}
	}
	d.pause(ctx, 3*time.Second)
	d.say("traffic since the decision: %s", d.flowSummary(e.Time, time.Now()))
	d.showDNS()
	if d.quick && s.want == monitor.Down {
		// Self-check for tests: from shortly after the decision, no
		// new connection may use the dead link or fail.
		if n, failed := d.flowCount(e.Time.Add(100*time.Millisecond), time.Now(), s.isp); n > 0 || failed > 0 {
			return fmt.Errorf("after %s was declared down, %d new connections still used it and %d failed", s.isp, n, failed)
		}
	}
	d.table()
	d.say("REPAIR: %s restored", s.isp)
	at = time.Now()
	if err := d.l.Restore(s.isp); err != nil {
		return err
	}
	e, err = d.waitEvent(ctx, s.isp, monitor.Up, 30*time.Second)
	if err != nil {
		return err
	}
	took = e.Time.Sub(at)
	d.say("multihome: %s is back up after %s (probes proved it, then the hold-down passed)", s.isp, took.Round(time.Millisecond))
	d.record("%-12s %-8s → up       in %s (incl. hold-down)", "repair", s.isp, took.Round(time.Millisecond))
	if watch {
		if err := d.ipv6Up(ctx, k, at); err != nil {
			return err
		}
		if len(d.frr) > 0 {
			if err := d.bgpUp(ctx, k, at, s.fault.Kind == lab.CarrierDown); err != nil {
				return err
			}
		}
	}
	d.pause(ctx, 2*time.Second)
	d.say("traffic after failback: %s", d.flowSummary(e.Time.Add(200*time.Millisecond), time.Now()))
	d.showDNS()
	return nil
}

// saturate fills isp2 (capacity 20Mbit in lab.yaml) with downloads through
// a 20Mbit bottleneck, as a busy real link would be.
func (d *demo) saturate(ctx context.Context) error {
	d.pause(ctx, 2*time.Second)
	d.say("LOAD: isp2 rate-limited to its 20Mbit capacity and filled with downloads")
	if _, err := d.l.Fault("isp2", lab.Fault{Kind: lab.RateLimit, Rate: "20Mbit"}); err != nil {
		return err
	}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.l.HTTPClient("gw", "wan2")
			for lctx.Err() == nil {
				req, _ := httpGet(lctx, "http://"+d.l.Servers.HTTP.String()+"/bytes?n=5000000")
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	start := time.Now()
	e, err := d.waitKind(ctx, "isp2", monitor.SaturationChanged, true, 20*time.Second)
	if err == nil {
		d.say("multihome: isp2 saturated after %s: down %.0f%% of capacity (%s)", e.Time.Sub(start).Round(time.Millisecond), e.Status.UtilDown*100, e.Reason)
		d.record("%-12s %-8s → saturated in %s", "load", "isp2", e.Time.Sub(start).Round(time.Millisecond))
		d.table()
	}
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	d.say("LOAD: downloads stopped")
	if _, err := d.waitKind(ctx, "isp2", monitor.SaturationChanged, false, 20*time.Second); err != nil {
		return err
	}
	d.say("multihome: isp2 no longer saturated")
	return d.l.Restore("isp2")
}

func (d *demo) readEvents(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e monitor.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		d.mu.Lock()
		d.status[e.Link] = e.Status
		d.mu.Unlock()
		d.events <- e
	}
	close(d.events)
	return sc.Err()
}

func (d *demo) waitState(ctx context.Context, link string, want monitor.State, timeout time.Duration) error {
	d.mu.Lock()
	st, ok := d.status[link]
	d.mu.Unlock()
	if ok && st.State == want {
		return nil
	}
	_, err := d.waitEvent(ctx, link, want, timeout)
	if err == nil {
		d.say("multihome: %s is %s", link, want)
	}
	return err
}

// waitEvent waits for link to change state to want; it reports other
// events of the way.
func (d *demo) waitEvent(ctx context.Context, link string, want monitor.State, timeout time.Duration) (monitor.Event, error) {
	return d.wait(ctx, timeout, fmt.Sprintf("%s to become %s", link, want), func(e monitor.Event) bool {
		return e.Link == link && e.Kind == monitor.StateChanged && e.To == want
	})
}

func (d *demo) waitKind(ctx context.Context, link string, k monitor.Kind, saturated bool, timeout time.Duration) (monitor.Event, error) {
	return d.wait(ctx, timeout, fmt.Sprintf("%s %s event", link, k), func(e monitor.Event) bool {
		return e.Link == link && e.Kind == k && e.Status.Saturated == saturated
	})
}

func (d *demo) wait(ctx context.Context, timeout time.Duration, what string, match func(monitor.Event) bool) (monitor.Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case e, ok := <-d.events:
			if !ok {
				return e, errors.New("multihome exited (run with --verbose to see its log)")
			}
			if match(e) {
				return e, nil
			}
			if e.Kind == monitor.StateChanged || e.Kind == monitor.HoldDownStarted {
				d.say("  event: %s %s: %s → %s: %s", e.Link, e.Kind, e.From, e.To, e.Reason)
			}
		case <-t.C:
			return monitor.Event{}, fmt.Errorf("waited %s for %s", timeout, what)
		case <-ctx.Done():
			return monitor.Event{}, ctx.Err()
		}
	}
}

func (d *demo) pause(ctx context.Context, t time.Duration) {
	if d.quick {
		t /= 4
	}
	select {
	case <-time.After(t):
	case <-ctx.Done():
	}
}

func (d *demo) say(format string, a ...any) {
	fmt.Fprintf(d.out, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func (d *demo) record(format string, a ...any) {
	d.results = append(d.results, fmt.Sprintf(format, a...))
}

// table prints the links as the daemon's API shows them now.
func (d *demo) table() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	links, err := d.api.Links(ctx)
	if err != nil {
		d.say("API: %v", err)
		return
	}
	fmt.Fprintf(d.out, "\n    %-6s %-9s %-9s %-6s %-8s %-7s %-9s %s\n", "LINK", "STATE", "RTT", "LOSS", "TARGETS", "UTIL↓", "RATE↓", "SATURATED")
	for _, s := range links {
		fmt.Fprintf(d.out, "    %-6s %-9s %-9s %-6s %d/%-6d %-7s %-9s %v\n", s.Link, s.State, s.RTT.Round(10*time.Microsecond),
			fmt.Sprintf("%.0f%%", s.Loss*100), s.TargetsUp, len(s.Targets), fmt.Sprintf("%.0f%%", s.UtilDown*100),
			humanRate(s.RateDown), s.Saturated)
	}
	fmt.Fprintln(d.out)
}

// serveDashboard proxies the daemon's API socket to a loopback TCP address
// so a browser on this machine can open the dashboard.
func serveDashboard(ctx context.Context, listen, sock string) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("--listen %q: want a loopback address such as 127.0.0.1:8080", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("dashboard: %w (choose another port with --listen)", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "multihome"
			r.Out.Host = "localhost"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
		FlushInterval: -1, // stream server-sent events at once
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return "http://" + ln.Addr().String() + "/", nil
}

func (d *demo) summary() {
	fmt.Fprintln(d.out, "\nWhat multihome measured (fault injected → decision):")
	for _, r := range d.results {
		fmt.Fprintln(d.out, "    "+r)
	}
	fmt.Fprintln(d.out, "\nFor comparison, with default settings: mwan3 ~60 s, pfSense ~14 s, BFD 300ms×3 ~0.9 s to declare a dead link.")
}

// outputStop writes to w and calls cancel when a write fails (the reader
// of the demo's output went away): the demo then tears the lab down.
type outputStop struct {
	w      io.Writer
	cancel context.CancelFunc
}

func (o *outputStop) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.cancel()
	}
	return n, err
}

// prefixWriter prefixes every line written to w.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(w, prefix+strings.TrimSpace(sc.Text()))
		}
	}()
	return pw
}

func httpGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}

// humanRate writes bit/s with three significant digits: "34.5kbit".
func humanRate(bps uint64) string {
	v, units := float64(bps), []string{"bit", "kbit", "Mbit", "Gbit"}
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + units[i]
}
