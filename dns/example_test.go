package dns

import (
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// TestDocsExample loads the example of docs/dns.md (kept identical to
// testdata/multihome.yaml), builds a server from it and checks a few of
// its answers.
func TestDocsExample(t *testing.T) {
	s, src := docsExample(t, "testdata/multihome.yaml")
	s.mu.Lock()
	for _, st := range src.Snapshot() {
		if st.Link == "isp1" {
			st.State = monitor.Down
		}
		s.applyStatus(st, s.now(), true)
	}
	s.rebuild()
	s.mu.Unlock()
	if l := s.lconf.tcp; l.perClient != 8 || l.maxConns != 256 || l.queries != 100 || l.read != 2*time.Second {
		t.Errorf("tcp limits %+v, want 8 per client and the defaults", l)
	}
	v := s.view.Load()
	ask := func(name string, qtype uint16) *mdns.Msg {
		return s.respond(v, new(mdns.Msg).SetQuestion(name, qtype), false, v.zones["example.com."].z.xfrAllow[0].Addr())
	}
	if got := sortedAddrs(ask("www.example.com.", mdns.TypeA)); got != "198.51.100.18" {
		t.Errorf("www with isp1 down: %s", got)
	}
	if got := sortedAddrs(ask("mail.example.com.", mdns.TypeA)); got != "198.51.100.19" {
		t.Errorf("mail (failover) with isp1 down: %s", got)
	}
	if r := ask("webmail.example.com.", mdns.TypeA); len(r.Answer) != 2 {
		t.Errorf("webmail CNAME www: %v", r)
	}
	if r := ask("shop.example.net.", mdns.TypeA); r.Rcode != mdns.RcodeRefused {
		t.Errorf("push-only zone served: %v", r)
	}
}

// docsExample checks that docs/dns.md holds the config file path as a
// ```yaml block, loads it and builds a server on a fake monitor with the
// links isp1 and isp2.
func docsExample(t *testing.T, path string) (*Server, *fakeSource) {
	t.Helper()
	example, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/dns.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(example)+"```") {
		t.Errorf("docs/dns.md does not hold %s as a ```yaml block", path)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	src := newFakeSource("isp1", "isp2")
	s, err := New(cfg, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, src
}
