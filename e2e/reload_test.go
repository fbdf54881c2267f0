package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multihome/multihome/examples"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// hup sends SIGHUP and waits for the daemon to log the outcome: nil when
// the reload was applied, the rejection's log line when it was refused.
func (d *daemon) hup(t *testing.T) error {
	t.Helper()
	ok, bad := strings.Count(d.logText(), `msg="config reloaded"`), strings.Count(d.logText(), `msg="reload rejected`)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		log := d.logText()
		if strings.Count(log, `msg="config reloaded"`) > ok {
			return nil
		}
		if strings.Count(log, `msg="reload rejected`) > bad {
			lines := strings.Split(log, "\n")
			for i := len(lines) - 1; i >= 0; i-- {
				if strings.Contains(lines[i], `msg="reload rejected`) {
					return fmt.Errorf("%s", lines[i])
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no reload outcome logged within 10 s of SIGHUP:\n%s", d.logText())
	return nil
}

// getBody returns the body of GET path from the API at sock.
func getBody(t *testing.T, sock, path string) []byte {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://localhost" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// get asks the daemon's API at sock for path with token (if any) and
// returns the status code (0 when the socket does not answer).
func get(sock, path, token string) int {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest("GET", "http://localhost"+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadEverySection: SIGHUP applies every section live. Adding the
// dns, bgp and ipv6 sections starts their subsystems (DNS answers, the
// BGP and IPv6 views appear), removing them stops them; a new API token
// is required at once and the old refused; a new API listen address
// serves before the old one closes; what cannot change live (api.history,
// log.format) is refused with the reason, and the daemon goes on.
func TestReloadEverySection(t *testing.T) {
	requireRoot(t)
	full := string(examples.Lab())
	i := strings.Index(full, "# Inbound")
	if i < 0 {
		t.Fatal("the lab example changed: no dns section to cut")
	}
	base, dnsSection := full[:i], full[i:]
	const bgpSection = `
bgp:
  asn: 64500
  prefixes: [192.0.2.128/25]
  neighbors:
    - {link: isp1, address: 198.51.100.1, asn: 64501}
`
	const ipv6Section = `
ipv6:
  lan: lan0
  prefixes:
    - {link: isp1, prefix: "2001:db8:1:100::/64"}
`
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	d, path := startDaemon(t, l, []byte(base))
	d.waitState(10*time.Second, "isp1", monitor.Up)
	dir := filepath.Dir(path)
	sock := dir + "/api.sock"
	apiLine := func(listen, extra string) string {
		return fmt.Sprintf("\napi: {listen: \"unix:%s\"%s}\n", listen, extra)
	}
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	via1 := l.ISPs[0].GW.String()
	answers := func() bool {
		_, _, err := queryA(t, l, via1, "www.example.com")
		return err == nil
	}
	if answers() {
		t.Fatal("DNS answers without a dns section")
	}

	write(base + dnsSection + bgpSection + ipv6Section + apiLine(sock, ""))
	if err := d.hup(t); err != nil {
		t.Fatalf("adding dns, bgp and ipv6 refused: %v", err)
	}
	if !answers() {
		t.Error("after adding the dns section: no DNS answer")
	}
	if c := get(sock, "/api/v1/bgp", ""); c != 200 {
		t.Errorf("after adding the bgp section: GET /api/v1/bgp = %d, want 200", c)
	}
	// The speaker a reload added records its decisions like one built at
	// start: its first announcement decision is in the decision log.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := d.cli("events")
		if err == nil && strings.Contains(out, "bgp") && strings.Contains(out, "198.51.100.1") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after adding the bgp section: no bgp decision in the log within 5 s: %v\n%s", err, out)
			break
		}
	}
	if c := get(sock, "/api/v1/ipv6", ""); c != 200 {
		t.Errorf("after adding the ipv6 section: GET /api/v1/ipv6 = %d, want 200", c)
	}
	if !strings.Contains(d.scrape(), "multihome_dns_") {
		t.Error("no multihome_dns_ metrics after adding the dns section")
	}

	write(base + apiLine(sock, ""))
	if err := d.hup(t); err != nil {
		t.Fatalf("removing dns, bgp and ipv6 refused: %v", err)
	}
	if answers() {
		t.Error("after removing the dns section: DNS still answers")
	}
	for _, p := range []string{"/api/v1/bgp", "/api/v1/ipv6"} {
		if c := get(sock, p, ""); c != 404 {
			t.Errorf("after removing its section: GET %s = %d, want 404", p, c)
		}
	}
	if strings.Contains(d.scrape(), "multihome_dns_") {
		t.Error("multihome_dns_ metrics remain after removing the dns section")
	}

	// Adding dns again (its metrics registered anew) works too.
	write(base + dnsSection + apiLine(sock, ""))
	if err := d.hup(t); err != nil || !answers() {
		t.Fatalf("adding the dns section again: %v, answers %v", err, answers())
	}

	// Token rotation.
	write(base + dnsSection + apiLine(sock, ", token: first-token"))
	if err := d.hup(t); err != nil {
		t.Fatalf("setting a token refused: %v", err)
	}
	if c := get(sock, "/api/v1/status", ""); c != 401 {
		t.Errorf("after setting a token: GET without it = %d, want 401", c)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	write(base + dnsSection + apiLine(sock, ", token_file: "+tokenFile))
	if err := d.hup(t); err != nil {
		t.Fatalf("rotating the token refused: %v", err)
	}
	if c := get(sock, "/api/v1/status", "first-token"); c != 401 {
		t.Errorf("after rotating the token: the old one gets %d, want 401", c)
	}
	if c := get(sock, "/api/v1/status", "second-token"); c != 200 {
		t.Errorf("after rotating the token: the new one gets %d, want 200", c)
	}

	// A new listen address: served at once, the old socket closed.
	sock2 := dir + "/api2.sock"
	write(base + dnsSection + apiLine(sock2, ", token_file: "+tokenFile))
	if err := d.hup(t); err != nil {
		t.Fatalf("moving the API refused: %v", err)
	}
	if c := get(sock2, "/api/v1/status", "second-token"); c != 200 {
		t.Errorf("after moving the API: the new socket answers %d, want 200", c)
	}
	if c := get(sock, "/api/v1/status", "second-token"); c != 0 {
		t.Errorf("after moving the API: the old socket still answers %d", c)
	}
	d.api = "unix:" + sock2

	// What cannot change live is refused, with the reason.
	write(base + dnsSection + apiLine(sock2, ", token_file: "+tokenFile+", history: 50"))
	err := d.hup(t)
	if err == nil || !strings.Contains(err.Error(), "api.history") || !strings.Contains(err.Error(), "restart") {
		t.Errorf("changing api.history: %v, want a refusal naming api.history and the restart it needs", err)
	}
	if c := get(sock2, "/api/v1/status", "second-token"); c != 200 || !answers() {
		t.Errorf("after a refused reload: API %d, DNS answers %v; want the old config serving", c, answers())
	}
}
