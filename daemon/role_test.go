package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ha"
	"github.com/multihome/multihome/monitor"
)

// fakeNode stands in for the ha node (keepalived's reports): the test
// sets its role.
type fakeNode struct {
	mu     sync.Mutex
	role   ha.Role
	onRole func(ha.Role)
}

func (n *fakeNode) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (n *fakeNode) Update(*config.Config) error   { return nil }
func (n *fakeNode) OnRole(f func(ha.Role))        { n.onRole = f }
func (n *fakeNode) Status() ha.Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return ha.Status{Role: n.role}
}
func (n *fakeNode) report(r ha.Role)                   { n.mu.Lock(); n.role = r; n.mu.Unlock(); n.onRole(r) }
func (s *fakeStandbyer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *fakeStandbyer) Update(*config.Config) error   { return nil }

// fakeStandbyer records every SetStandby.
type fakeStandbyer struct {
	mu    sync.Mutex
	calls []bool
}

func (s *fakeStandbyer) SetStandby(b bool) { s.mu.Lock(); s.calls = append(s.calls, b); s.mu.Unlock() }

func (s *fakeStandbyer) history() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// standby is the last role set, false (master) when none was.
func (s *fakeStandbyer) standby() bool {
	h := s.history()
	return len(h) > 0 && h[len(h)-1]
}

const roleLinks = `
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1, address4: 198.51.100.2}
api: {listen: "off"}
`

const roleHA = `
ha:
  node: gwa
  partner: gwb
  sync: {interface: sync0, address: 203.0.113.249/30, partner: 203.0.113.250}
  instances:
    - {interface: lan0, vrid: 51, virtual_addresses: [192.0.2.1/25]}
`

// TestRoleFollowsReload: the subsystems that stand down follow the ha
// node's role, whether the ha section was there at start or added by a
// reload (from the node's start: standby until it reports master, also
// for a subsystem added in the same reload); a reload that removes the
// section gives them their master behaviour back.
func TestRoleFollowsReload(t *testing.T) {
	var node *fakeNode
	old := slices.Clone(builders)
	t.Cleanup(func() { builders = old; delete(optional, "withha") })
	for i, b := range builders {
		if b.name == "ha" {
			builders[i].build = func(cfg *config.Config, _ monitor.Source, _ prometheus.Registerer, _ *slog.Logger) (subsystem, error) {
				if cfg.HA == nil {
					return nil, nil
				}
				node = &fakeNode{role: ha.RoleInit}
				return node, nil
			}
		}
	}
	// always runs from the start; withha is added with the ha section.
	always, withha := &fakeStandbyer{}, &fakeStandbyer{}
	builders = append(builders,
		builder{"always", func(*config.Config, monitor.Source, prometheus.Registerer, *slog.Logger) (subsystem, error) {
			return always, nil
		}},
		builder{"withha", func(cfg *config.Config, _ monitor.Source, _ prometheus.Registerer, _ *slog.Logger) (subsystem, error) {
			if cfg.HA == nil {
				return nil, nil
			}
			return withha, nil
		}})
	optional["withha"] = func(c *config.Config) bool { return c.HA != nil }

	// The API is built (not run) for its decision log.
	links := strings.Replace(roleLinks, `api: {listen: "off"}`, `api: {listen: "127.0.0.1:9771"}`, 1)
	d := newTestDaemon(t, links)
	// The daemon is not run (its monitor would probe from this
	// namespace, outbound would write its tables): the subsystems other
	// than the fakes, which refuse updates while not running, are left
	// out of the reloads. What is tested is the daemon's own wiring.
	for _, s := range d.subs {
		if s.sub != always {
			s.sub = nopSub{}
		}
	}
	if always.standby() {
		t.Fatalf("without an ha section a subsystem stands down: %v", always.history())
	}
	reload := func(yaml string) {
		t.Helper()
		cfg, err := config.Parse("multihome.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}

	reload(links + roleHA)
	if node == nil {
		t.Fatal("the reload did not build the ha node")
	}
	if !always.standby() {
		t.Errorf("ha section added, node not master yet: the running subsystem did not stand down: %v", always.history())
	}
	if h := withha.history(); len(h) == 0 || !h[0] {
		t.Errorf("a subsystem added with the ha section did not start as standby: %v", h)
	}
	node.report(ha.RoleMaster)
	if always.standby() || withha.standby() {
		t.Errorf("master: still standing down: %v %v", always.history(), withha.history())
	}
	node.report(ha.RoleBackup)
	if !always.standby() || !withha.standby() {
		t.Errorf("backup: not standing down: %v %v", always.history(), withha.history())
	}
	node.report(ha.RoleFault)
	if !always.standby() {
		t.Errorf("fault: not standing down: %v", always.history())
	}
	if st, ok := d.HAStatus(); !ok || st.Role != ha.RoleFault {
		t.Errorf("HAStatus = %+v, %v", st, ok)
	}

	// The role changes are in the decision log.
	rec := httptest.NewRecorder()
	d.api.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/api/v1/events?limit=100", nil))
	var ev struct {
		Events []api.Entry `json:"events"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ev); err != nil {
		t.Fatalf("events: %v: %s", err, rec.Body)
	}
	var roles []string
	for _, e := range ev.Events {
		if e.Kind == "ha" {
			roles = append(roles, e.From+"->"+e.To)
			if !strings.Contains(e.Reason, "keepalived reported the role; ") || !strings.Contains(e.Reason, "always, withha") {
				t.Errorf("ha entry without its reason: %+v", e)
			}
		}
	}
	if want := []string{"init->master", "master->backup", "backup->fault"}; !slices.Equal(roles, want) {
		t.Errorf("role changes in the decision log: %v, want %v\n%s", roles, want, rec.Body)
	}

	reload(links)
	if always.standby() {
		t.Errorf("ha section removed: the subsystem still stands down: %v", always.history())
	}
	if _, ok := d.HAStatus(); ok {
		t.Error("HAStatus with the ha section removed")
	}
	// The removed node's late reports change nothing.
	node.report(ha.RoleBackup)
	if always.standby() {
		t.Errorf("a removed node's report made the subsystem stand down: %v", always.history())
	}
}

// TestRoleAtStart: with the ha section in the config at start, every
// subsystem that can stand down starts as standby, before keepalived has
// reported.
func TestRoleAtStart(t *testing.T) {
	old := slices.Clone(builders)
	t.Cleanup(func() { builders = old })
	var node *fakeNode
	for i, b := range builders {
		if b.name == "ha" {
			builders[i].build = func(cfg *config.Config, _ monitor.Source, _ prometheus.Registerer, _ *slog.Logger) (subsystem, error) {
				node = &fakeNode{role: ha.RoleInit}
				return node, nil
			}
		}
	}
	sb := &fakeStandbyer{}
	builders = append([]builder{{"first", func(*config.Config, monitor.Source, prometheus.Registerer, *slog.Logger) (subsystem, error) {
		return sb, nil
	}}}, builders...)
	newTestDaemon(t, roleLinks+roleHA)
	if h := sb.history(); len(h) == 0 || !h[0] || !sb.standby() {
		t.Fatalf("SetStandby calls %v, want standby from the start", h)
	}
	node.report(ha.RoleMaster)
	if sb.standby() {
		t.Errorf("master: still standby: %v", sb.history())
	}
}

type nopSub struct{}

func (nopSub) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (nopSub) Update(*config.Config) error   { return nil }
