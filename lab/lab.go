// Package lab builds a small Internet out of network namespaces for tests,
// the demo and `multihome-lab up|down|status|fault`: LAN hosts behind a
// gateway namespace, one router namespace per ISP, and a core router that
// hosts HTTP, DNS and echo servers. Each ISP can be broken on demand (carrier
// loss, blackhole, packet loss, rate limit) and repaired again.
//
// The lab configures everything except the gateway's policy: the gateway
// namespace gets its interfaces, addresses, forwarding, and one default route
// per ISP (metric 100*k, as DHCP on a multi-WAN router would install), and
// nothing of multihome; a test starts the daemon there.
//
// The addressing plan is in plan.go and docs/lab.md. Every namespace is
// named "<lab name>-<role>"; lab names never contain "-", so
// [Cleanup](name+"-") removes exactly one lab. Tests build labs with
// labtest.Up, which names them netns.Unique(TestPrefix, ""), recording the
// creating pid, so test binaries can sweep the leftovers of crashed runs
// with [CleanupStale]. Everything that needs the testing package lives in
// lab/labtest, so the lab links into cmd/multihome-lab without it.
//
// A lab built by [Up] runs its servers in the calling process (listening
// sockets opened inside the core namespace, served from ordinary goroutines)
// and writes a state file under StateDir so another process can [Load] it
// for status, faults and teardown. Faults are read back from the kernel, not
// from memory.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/multihome/multihome/netns"
	"golang.org/x/sys/unix"
)

// TestPrefix starts the names of labs made by labtest.Up.
const TestPrefix = "mhlt"

// Spec describes a lab.
type Spec struct {
	// Name is unique on the machine and prefixes every namespace of the
	// lab: letters, digits, "_" and ".", at most 20 characters, no "-".
	Name string `json:"name"`
	// ISPs is the number of ISPs, 1..8; 0 means 2.
	ISPs int `json:"isps"`
	// LANHosts is the number of LAN hosts, 1..16; 0 means 1.
	LANHosts int `json:"lan_hosts"`
	// SharedUpstream makes every ISP forward through one shared upstream
	// router namespace ("up") instead of connecting to the core directly:
	// a single point of failure for an audit to find.
	SharedUpstream bool `json:"shared_upstream,omitempty"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.]{0,19}$`)

func (s Spec) withDefaults() (Spec, error) {
	if !nameRE.MatchString(s.Name) {
		return s, fmt.Errorf("lab name %q: want 1-20 letters, digits, '_' or '.', no '-'", s.Name)
	}
	if s.ISPs == 0 {
		s.ISPs = 2
	}
	if s.LANHosts == 0 {
		s.LANHosts = 1
	}
	if s.ISPs < 1 || s.ISPs > MaxISPs {
		return s, fmt.Errorf("lab %s: %d ISPs, want 1..%d", s.Name, s.ISPs, MaxISPs)
	}
	if s.LANHosts < 1 || s.LANHosts > MaxLANHosts {
		return s, fmt.Errorf("lab %s: %d LAN hosts, want 1..%d", s.Name, s.LANHosts, MaxLANHosts)
	}
	return s, nil
}

// Lab is a running lab. Its exported fields are facts to read, not to
// change.
type Lab struct {
	Name  string
	Spec  Spec // with defaults filled in
	ISPs  []ISP
	Hosts []Host
	// LANIface is the gateway's LAN interface (a bridge): GWLANIface.
	LANIface string
	LAN      netip.Prefix // 192.0.2.0/25
	LAN6     netip.Prefix // 2001:db8:100::/64
	GWLAN    netip.Addr   // 192.0.2.1
	GWLAN6   netip.Addr   // 2001:db8:100::1
	Servers  Servers

	log    *slog.Logger
	srv    *servers // nil for a lab loaded from its state file
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	created time.Time
	pid     int
	since   map[string]map[FaultKind]time.Time // ISP → kind → applied at
	frrs    []*FRR                             // started by StartFRR, stopped by Down
}

func newLab(spec Spec, log *slog.Logger) *Lab {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{
		Name:     spec.Name,
		Spec:     spec,
		LANIface: GWLANIface,
		LAN:      netip.MustParsePrefix(LANPrefix),
		LAN6:     netip.MustParsePrefix(LANPrefix6),
		GWLAN:    netip.MustParseAddr(LANGateway),
		GWLAN6:   netip.MustParseAddr(LANGateway6),
		Servers:  DefaultServers,
		log:      log.With("subsystem", "lab", "lab", spec.Name),
		since:    map[string]map[FaultKind]time.Time{},
		pid:      os.Getpid(),
		created:  time.Now(),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for k := 1; k <= spec.ISPs; k++ {
		isp := PlanISP(k)
		isp.NS = l.NS(isp.Name)
		l.ISPs = append(l.ISPs, isp)
	}
	for k := 1; k <= spec.LANHosts; k++ {
		h := PlanHost(k)
		h.NS = l.NS(h.Name)
		l.Hosts = append(l.Hosts, h)
	}
	return l
}

// NS returns the namespace name of a role ("gw", "core", "isp1", "lan1",
// "up").
func (l *Lab) NS(role string) string { return l.Name + "-" + role }

// Roles returns the roles of the lab, in build order.
func (l *Lab) Roles() []string {
	roles := []string{RoleCore}
	if l.Spec.SharedUpstream {
		roles = append(roles, RoleUpstream)
	}
	for _, isp := range l.ISPs {
		roles = append(roles, isp.Name)
	}
	roles = append(roles, RoleGW)
	for _, h := range l.Hosts {
		roles = append(roles, h.Name)
	}
	return roles
}

// Namespaces returns the namespace names of the lab, in build order.
func (l *Lab) Namespaces() []string {
	var names []string
	for _, r := range l.Roles() {
		names = append(names, l.NS(r))
	}
	return names
}

// ISP returns the ISP named name ("isp1").
func (l *Lab) ISP(name string) (ISP, error) {
	for _, isp := range l.ISPs {
		if isp.Name == name {
			return isp, nil
		}
	}
	return ISP{}, fmt.Errorf("lab %s: no ISP %q", l.Name, name)
}

// Up builds a lab: namespaces, links, addresses, routes, forwarding,
// servers and the state file. ctx bounds the build only; the lab lives
// until Down. On any error, Up tears down what it built.
func Up(ctx context.Context, spec Spec, log *slog.Logger) (*Lab, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	existing, err := netns.List(spec.Name + "-")
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("lab %s exists already (namespaces %v)", spec.Name, existing)
	}
	l := newLab(spec, log)
	start := time.Now()
	if err := l.build(ctx); err != nil {
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("tear down: %w", derr))
		}
		return nil, fmt.Errorf("lab %s up: %w", spec.Name, err)
	}
	l.log.Info("lab up", "isps", spec.ISPs, "lan_hosts", spec.LANHosts,
		"shared_upstream", spec.SharedUpstream, "took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// Down stops the servers, every process started with Run and every FRR
// instance of the lab (StartFRR), removes every namespace of the lab and
// its state file. It is idempotent, and works on a lab loaded from its
// state file too.
func (l *Lab) Down() error {
	l.cancel()
	if l.srv != nil {
		l.srv.close()
	}
	var errs []error
	if err := l.stopFRR(); err != nil {
		errs = append(errs, err)
	}
	names := l.Namespaces()
	// Also anything else carrying the lab's prefix (a half-built lab).
	if more, err := netns.List(l.Name + "-"); err == nil {
		for _, n := range more {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if err := netns.Delete(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(statePath(l.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s down: %w", l.Name, err)
	}
	l.log.Debug("lab down")
	return nil
}

// Run returns a command that runs argv inside the namespace of role (via
// `ip netns exec`). The command is killed when ctx is done or the lab goes
// down.
func (l *Lab) Run(ctx context.Context, role string, argv ...string) *exec.Cmd {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.ctx, cancel)
	context.AfterFunc(ctx, func() { stop() })
	cmd := netns.Command(ctx, l.NS(role), argv...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// DialContext opens a connection from inside the namespace of role, bound
// with SO_BINDTODEVICE to device unless device is empty. address must be
// an IP literal and port.
func (l *Lab) DialContext(ctx context.Context, role, device, network, address string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if device != "" {
		d.Control = bindToDevice(device)
	}
	return netns.DialContext(ctx, l.NS(role), d, network, address)
}

// HTTPClient returns an HTTP client whose connections are opened inside
// the namespace of role, bound to device unless device is empty. URLs must
// use IP literals; there is no proxy and no connection reuse.
func (l *Lab) HTTPClient(role, device string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
				return l.DialContext(ctx, role, device, network, address)
			},
		},
	}
}

// Get fetches path (e.g. "/ip") from the lab's HTTP server over IPv4 from
// role, bound to device unless empty, and returns the body.
func (l *Lab) Get(ctx context.Context, role, device, path string) (string, error) {
	url := "http://" + l.Servers.HTTP.String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := l.HTTPClient(role, device).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

func bindToDevice(device string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, device)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", device, serr)
		}
		return nil
	}
}
