package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

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
