package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
	"github.com/multihome/multihome/audit"
)

func get(t *testing.T, hc *http.Client, url string) (int, http.Header, string) {
	t.Helper()
	res, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func TestBGPAndAudit(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...), apitest.Neighbors()...)
	_, addr := apitest.Start(t, f, api.Options{})
	hc, base := httpClient(t, addr)

	code, h, body := get(t, hc, base+"/api/v1/bgp")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/bgp: %d %s: %s", code, h.Get("Content-Type"), body)
	}
	var list api.BGPList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Neighbors) != 3 {
		t.Fatalf("%d neighbours: %s", len(list.Neighbors), body)
	}
	for _, want := range []string{`"neighbor": "198.51.100.1"`, `"link": "cable"`, `"peer_as": 64502`, `"state": "established"`,
		`"prepend": 3`, `"prefixes_sent": 2`, `"withdrawn": true`, `"reason": "hold timer expired"`, `"bfd": "up"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /api/v1/bgp lacks %s:\n%s", want, body)
		}
	}
	if n := list.Neighbors[2]; n.Neighbor.String() != "2001:db8:ff::1" || n.State != "active" || n.Announced {
		t.Errorf("third neighbour %+v", n)
	}

	code, _, body = get(t, hc, base+"/api/v1/audit")
	if code != 200 {
		t.Fatalf("GET /api/v1/audit: %d: %s", code, body)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("audit report: %v\n%s", err, body)
	}
	if len(rep.Findings) == 0 || rep.Graph == nil {
		t.Errorf("audit report without findings or graph: %s", body)
	}
	if !strings.Contains(body, `"check": "probe-gateway-only"`) || !strings.Contains(body, `"severity": "medium"`) {
		t.Errorf("audit report lacks the gateway-only finding:\n%s", body)
	}

	code, h, body = get(t, hc, base+"/api/v1/audit.svg")
	if code != 200 || h.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(body, "<svg") || !strings.Contains(body, "single points of failure") {
		t.Errorf("GET /api/v1/audit.svg: %d %q: %.200s", code, h.Get("Content-Type"), body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("audit.svg CSP %q", csp)
	}

	// A reload without the bgp section: 404 with a reason.
	f.SetBGP(false)
	code, _, body = get(t, hc, base+"/api/v1/bgp")
	if code != 404 || !strings.Contains(body, `"error": "bgp is not configured`) {
		t.Errorf("GET /api/v1/bgp without bgp: %d %s", code, body)
	}
	// Configured, no neighbour yet: an empty list, not null.
	f.SetBGP(true)
	if code, _, body = get(t, hc, base+"/api/v1/bgp"); code != 200 || !strings.Contains(body, `"neighbors": []`) {
		t.Errorf("GET /api/v1/bgp with no neighbours: %d %s", code, body)
	}
	if code, _, body = get(t, hc, base+"/api/v1/audit"); code != 200 {
		t.Errorf("GET /api/v1/audit: %d %s", code, body)
	}
	res, err := hc.Post(base+"/api/v1/audit", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/audit: %d", res.StatusCode)
	}
}

// A backend without the optional interfaces answers 404 with a clear
// error, as a daemon without BGP does.
func TestBGPAndAuditUnavailable(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	_, addr := apitest.Start(t, f, api.Options{})
	hc, base := httpClient(t, addr)
	for path, want := range map[string]string{
		"/api/v1/bgp":       `"error": "bgp is not configured`,
		"/api/v1/audit":     `"error": "audit is not available`,
		"/api/v1/audit.svg": `"error": "audit is not available`,
		"/api/v1/ipv6":      `"error": "ipv6 is not configured`,
	} {
		code, h, body := get(t, hc, base+path)
		if code != 404 || h.Get("Content-Type") != "application/json" || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %s %s", path, code, h.Get("Content-Type"), body)
		}
	}
}

func TestBGPAndAuditToken(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...), apitest.Neighbors()...)
	_, addr := apitest.Start(t, f, api.Options{Listen: "127.0.0.1:0", Token: "s3cret"})
	hc, base := httpClient(t, addr)
	for _, path := range []string{"/api/v1/bgp", "/api/v1/audit", "/api/v1/audit.svg"} {
		if code, _, _ := get(t, hc, base+path); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d", path, code)
		}
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s with the token: %d", path, res.StatusCode)
		}
	}
}

func TestIPv6Status(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...))
	_, addr := apitest.Start(t, f, api.Options{})
	hc, base := httpClient(t, addr)

	// WithStatus starts without an ipv6 section: 404 with a reason.
	code, _, body := get(t, hc, base+"/api/v1/ipv6")
	if code != 404 || !strings.Contains(body, `"error": "ipv6 is not configured: the config has no ipv6 section"`) {
		t.Errorf("GET /api/v1/ipv6 without ipv6: %d %s", code, body)
	}

	f.SetIPv6(true, apitest.IPv6())
	code, h, body := get(t, hc, base+"/api/v1/ipv6")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/ipv6: %d %s: %s", code, h.Get("Content-Type"), body)
	}
	for _, want := range []string{`"mode": "sadr"`, `"lan": "lan0"`, `"link": "fiber"`, `"prefix": "2001:db8:1:100::/64"`,
		`"source": "static"`, `"source": "dhcpv6-pd"`, `"state": "preferred"`, `"state": "pending"`,
		`"preferred_lifetime_s": 1800`, `"valid_lifetime_s": 3600`, `"delegated": "2001:db8:2:100::/56"`,
		`"renew_at": "`, `"rebind_at": "`, `"valid_until": "`, `"bound_at": "`, `"server": "000300010203040506ff"`,
		`"family": "inet"`, `"table": "filter"`, `"set": "lan6"`, `"updates": 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /api/v1/ipv6 lacks %s:\n%s", want, body)
		}
	}
	var st api.IPv6Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Prefixes) != 3 || len(st.FirewallSets) != 1 || len(st.FirewallSets[0].Prefixes) != 2 {
		t.Fatalf("decoded %+v", st)
	}
	if p := st.Prefixes[2]; p.Prefix.IsValid() || p.Lease != nil || strings.Contains(body, `"prefix": ""`) {
		t.Errorf("pending prefix %+v: it must have no prefix and no lease:\n%s", p, body)
	}
	if l := st.Prefixes[1].Lease; l == nil || !l.RenewAt.After(time.Now()) || !l.ValidUntil.After(l.RenewAt) {
		t.Errorf("cable's lease %+v", l)
	}
	if st.Prefixes[0].Lease != nil || strings.Count(body, `"lease"`) != 1 {
		t.Errorf("only the learned prefix has a lease:\n%s", body)
	}

	// The fiber link goes down: its prefix is deprecated, and the client
	// reads it.
	f.UpdatePrefix("fiber", func(p *api.IPv6Prefix) {
		p.State, p.Reason, p.PreferredLifetime = api.IPv6Deprecated, "link down", 0
	})
	c, err := api.NewClient(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.IPv6(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Prefixes[0]; p.Link != "fiber" || p.State != "deprecated" || p.Reason != "link down" || p.PreferredLifetime != 0 || p.ValidLifetime != 3600 {
		t.Errorf("fiber after the update: %+v", p)
	}

	// Configured, nothing known yet: empty lists, not null.
	f.SetIPv6(true, api.IPv6Status{Mode: "sadr", FirewallSets: []api.FirewallSet{{Family: "inet", Table: "filter", Set: "lan6"}}})
	code, _, body = get(t, hc, base+"/api/v1/ipv6")
	if code != 200 || !strings.Contains(body, `"prefixes": []`) || strings.Contains(body, "null") {
		t.Errorf("GET /api/v1/ipv6 with nothing known: %d %s", code, body)
	}
	f.SetIPv6(false, api.IPv6Status{})
	if _, err := c.IPv6(t.Context()); err == nil {
		t.Error("client: no error without ipv6")
	} else if ae, ok := err.(*api.APIError); !ok || ae.Code != 404 {
		t.Errorf("client without ipv6: %v", err)
	}
}
