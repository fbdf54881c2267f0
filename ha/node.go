package ha

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/nft"
)

// Role is this node's part in the pair, as keepalived reports it.
type Role string

// Roles.
const (
	RoleInit    Role = "init"    // keepalived has not reported yet
	RoleBackup  Role = "backup"  // the partner holds the virtual addresses
	RoleMaster  Role = "master"  // this node holds them and forwards
	RoleFault   Role = "fault"   // this node gave the role up (LAN or every uplink dead)
	RoleStopped Role = "stopped" // keepalived stopped
)

// Status is what the API shows of the pair.
type Status struct {
	Node    string `json:"node"`
	Partner string `json:"partner"`
	Role    Role   `json:"role"`
	// RoleSince is when Role last changed.
	RoleSince time.Time `json:"role_since,omitzero"`
	// Priority is the VRRP priority this node advertises: the base plus
	// what its healthy uplinks add (LinksPoints).
	Priority    int `json:"priority"`
	LinksPoints int `json:"links_points"`
	// Fault is true while this node gives the role up, with why.
	Fault       bool   `json:"fault"`
	FaultReason string `json:"fault_reason,omitempty"`
	// Instances are the VRRP instances' last reported states.
	Instances map[string]string `json:"instances"`
	// LastTakeover is when this node last became master, and how long the
	// commit of the synced connections into the kernel took.
	LastTakeover   time.Time     `json:"last_takeover,omitzero"`
	LastCommit     time.Duration `json:"last_commit_ns"`
	LastCommitErr  string        `json:"last_commit_error,omitempty"`
	Takeovers      int           `json:"takeovers"`
	Sync           SyncStatus    `json:"sync"`
	Programs       []ChildStatus `json:"programs"`
	VirtualAddress []string      `json:"virtual_addresses"`
}

// SyncStatus is conntrackd's view of the sync link.
type SyncStatus struct {
	// PartnerSeen is true when sync traffic from the partner arrived
	// within the last few seconds (conntrackd's FTFW sends alive messages
	// when idle).
	PartnerSeen bool      `json:"partner_seen"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	// Internal is the number of this node's flows conntrackd tracks;
	// External the number of the partner's flows held for a takeover.
	Internal int `json:"internal"`
	External int `json:"external"`
	// BytesReceived counts sync traffic from the partner.
	BytesReceived uint64 `json:"bytes_received"`
	Error         string `json:"error,omitempty"`
}

// Node runs this gateway's half of the pair: keepalived and conntrackd as
// children, the track files, the notify FIFO and the role's actions.
type Node struct {
	log *slog.Logger
	src monitor.Source
	// conntrackdCmd runs a conntrackd client command (-c, -f, ...) and
	// returns its output; tests replace it.
	conntrackdCmd func(ctx context.Context, args ...string) ([]byte, error)

	updates chan update
	// stopped is closed when Run returns: an Update after that fails at
	// once instead of waiting for a loop that is gone.
	stopped chan struct{}
	// onRole, when set, is called (from Run's goroutine) with every new
	// role: the daemon stands the other subsystems down or up with it.
	onRole func(Role)

	mu  sync.Mutex // guards cfg, st and the children pointers for Status
	cfg *config.Config
	st  Status
	ka  *child
	ct  *child
}

type update struct {
	cfg *config.Config
	err chan error
}

// New checks that the HA section can run: nothing starts until Run.
func New(cfg *config.Config, src monitor.Source, log *slog.Logger) (*Node, error) {
	if cfg.HA == nil {
		return nil, errors.New("no ha section")
	}
	n := &Node{log: log, src: src, cfg: cfg, updates: make(chan update), stopped: make(chan struct{})}
	n.conntrackdCmd = func(ctx context.Context, args ...string) ([]byte, error) {
		h := n.config().HA
		return conntrackdRun(ctx, h.Conntrackd, path(h, conntrackdConf), args...)
	}
	n.st = Status{Node: cfg.HA.Node, Partner: cfg.HA.Partner, Role: RoleInit, Instances: map[string]string{}}
	return n, nil
}

func (n *Node) config() *config.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// conntrackdTimeout bounds each conntrackd client command; a variable
// for tests.
var conntrackdTimeout = 10 * time.Second

// conntrackdRun runs one conntrackd client command (-c, -f, -s, ...)
// against the running daemon's socket and returns its output. A command
// that hangs (a conntrackd stuck on a full kernel table) is killed after
// conntrackdTimeout, and counted and logged by bound as call
// "conntrackd".
func conntrackdRun(ctx context.Context, bin, conf string, args ...string) ([]byte, error) {
	var out []byte
	err := bound.Call(ctx, "conntrackd", conntrackdTimeout, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-C", conf}, args...)...)
		// A child that keeps the output open does not hold us past the
		// kill.
		cmd.WaitDelay = time.Second
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return out, err
}

// authPass reads the VRRPv2 password file, if any.
func authPass(h *config.HA) (string, error) {
	if h.AuthPassFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(h.AuthPassFile)
	if err != nil {
		return "", fmt.Errorf("ha auth_pass_file: %w", err)
	}
	p := strings.TrimSpace(string(b))
	if p == "" || len(p) > 8 || strings.ContainsAny(p, " \t\"") {
		return "", fmt.Errorf("ha auth_pass_file %s: want 1..8 characters, no spaces or quotes", h.AuthPassFile)
	}
	return p, nil
}

// Run writes the configs and track files, installs the guard table,
// starts conntrackd and keepalived, and follows link events and role
// changes until ctx ends; then it stops both and removes the guard.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.stopped)
	cfg := n.config()
	h := cfg.HA
	pass, err := authPass(h)
	if err != nil {
		return err
	}
	events, unsubscribe := n.src.Subscribe()
	defer unsubscribe()
	if err := os.MkdirAll(h.RunDir, 0o700); err != nil {
		return fmt.Errorf("ha run dir: %w", err)
	}
	if err := writeFile(path(h, keepalivedConf), RenderKeepalived(cfg, pass)); err != nil {
		return err
	}
	if err := writeFile(path(h, conntrackdConf), RenderConntrackd(cfg)); err != nil {
		return err
	}
	n.writeTrack(cfg, n.src.Snapshot())
	fifo, err := openFIFO(path(h, notifyFIFO))
	if err != nil {
		return err
	}
	defer fifo.Close()
	guard := nft.NewTable(nft.Command("nft"), "inet", GuardTable)
	if err := guard.Apply(ctx, guardRuleset(), nil); err != nil {
		return fmt.Errorf("ha guard table: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := guard.Delete(ctx); err != nil {
			n.log.Error("removing the guard table", "err", err)
		}
	}()

	ct := &child{name: "conntrackd", log: n.log, argv: []string{h.Conntrackd, "-C", path(h, conntrackdConf)},
		prepare: func() error { return removeStale(path(h, conntrackdLock), path(h, conntrackdSock)) }}
	ka := &child{name: "keepalived", log: n.log, argv: []string{h.Keepalived, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
		"-f", path(h, keepalivedConf), "-p", path(h, keepalivedPID), "-r", path(h, vrrpPID)},
		prepare: func() error {
			return removeDeadPIDFiles(n.log, h.Keepalived, path(h, keepalivedPID), path(h, vrrpPID))
		}}
	n.mu.Lock()
	n.ct, n.ka = ct, ka
	n.mu.Unlock()
	var wg sync.WaitGroup
	cctx, stopChildren := context.WithCancel(context.Background())
	defer func() {
		stopChildren()
		wg.Wait()
		n.setRole(RoleStopped, "multihome stopping")
	}()
	wg.Add(2)
	go func() { defer wg.Done(); ct.run(cctx) }()
	go func() { defer wg.Done(); ka.run(cctx) }()

	lines := make(chan string, 64)
	go readLines(fifo, lines)
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	n.log.Info("ha node running", "node", h.Node, "partner", h.Partner, "instances", len(h.Instances), "advert_interval", h.AdvertInterval.D())
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("link event source closed")
			}
			_ = ev
			n.writeTrack(n.config(), n.src.Snapshot())
		case line := <-lines:
			n.onNotify(ctx, line)
		case u := <-n.updates:
			u.err <- n.apply(u.cfg)
		case <-poll.C:
			n.pollSync(ctx)
		}
	}
}

// GuardTable is the nftables table the node owns: it drops TCP packets
// that would open a flow without a SYN, so that on a new master a packet
// of a flow conntrackd has not committed yet is dropped (and
// retransmitted after the commit) instead of being answered with a reset,
// as pfSense drops state mismatches.
const GuardTable = "multihome_ha"

func guardRuleset() nft.Ruleset {
	rules := []string{
		`ct state invalid counter drop comment "not part of a known flow"`,
		`ct state new tcp flags & (fin|syn|rst|ack) != syn counter drop comment "mid-flow TCP without a (synced) connection entry"`,
	}
	return nft.Ruleset{Family: "inet", Name: GuardTable,
		Header: []string{"multihome ha: TCP flows are only opened by a SYN"},
		Chains: []nft.Chain{{Name: "prerouting", Type: "filter", Hook: "prerouting", Priority: "-150", Policy: "accept", Rules: rules}}}
}

func writeFile(p, text string) error {
	if err := os.WriteFile(p+".tmp", []byte(text), 0o600); err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	return nil
}

// removeStale removes what a killed conntrackd leaves behind; it refuses
// to start while they exist.
func removeStale(files ...string) error {
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removeDeadPIDFiles removes the pid files that do not name a live
// process of program (the base name of its executable). keepalived
// refuses to start ("daemon is already running") while its pid file
// names any process that exists: after a crash or a power loss that is
// its own unreaped zombie (init reaps orphans when it gets to it, up to
// seconds later) or, once the pid is reused, some other program, which
// would keep it from starting at all. A live keepalived keeps its file:
// one still stopping must not be joined by a second.
func removeDeadPIDFiles(log *slog.Logger, program string, files ...string) error {
	comm := filepath.Base(program)
	if len(comm) > 15 { // the kernel keeps 15 bytes of a command name
		comm = comm[:15]
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ha: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && liveProcess(pid, comm) {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("ha: %w", err)
		}
		log.Info("removed a stale pid file", "file", f, "pid", strings.TrimSpace(string(b)))
	}
	return nil
}

// liveProcess reports whether pid is a process named comm that is
// neither a zombie nor dead.
func liveProcess(pid int, comm string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return false
	}
	state := s[end+2]
	return s[open+1:end] == comm && state != 'Z' && state != 'X'
}

// openFIFO makes the notify FIFO and opens it read-write, so that reads
// never see end-of-file while keepalived restarts.
func openFIFO(p string) (*os.File, error) {
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		return nil, fmt.Errorf("ha notify fifo: %w", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ha notify fifo: %w", err)
	}
	return f, nil
}

func readLines(f *os.File, out chan<- string) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out <- sc.Text()
	}
}

// Health is what the links say about this node's claim to the role.
type Health struct {
	// Points is the priority the uplinks add: LinkWeight per link up,
	// half of it per link degraded.
	Points int
	// Fault is set when every uplink is down: the node gives the role up.
	Fault  bool
	Reason string
}

// HealthOf computes a node's health from its links' states. Links not
// judged yet (unknown) add nothing and are not counted as down.
func HealthOf(h *config.HA, links []monitor.Status) Health {
	var hl Health
	down := 0
	for _, s := range links {
		switch s.State {
		case monitor.Up:
			hl.Points += h.LinkWeight
		case monitor.Degraded:
			hl.Points += h.LinkWeight / 2
		case monitor.Down:
			down++
		}
	}
	if len(links) > 0 && down == len(links) {
		hl.Fault, hl.Reason = true, fmt.Sprintf("all %d uplinks down", len(links))
	}
	return hl
}

// writeTrack writes the two track files when their values change;
// keepalived re-reads a file when it is modified.
func (n *Node) writeTrack(cfg *config.Config, links []monitor.Status) {
	h := cfg.HA
	hl := HealthOf(h, links)
	n.mu.Lock()
	changed := n.st.LinksPoints != hl.Points || n.st.Fault != hl.Fault || n.st.Priority == 0
	n.st.LinksPoints, n.st.Fault, n.st.FaultReason = hl.Points, hl.Fault, hl.Reason
	n.st.Priority = min(h.Priority+hl.Points, 254)
	n.mu.Unlock()
	if !changed {
		return
	}
	fault := "0"
	if hl.Fault {
		fault = "1"
	}
	err := errors.Join(writeFile(path(h, linksFile), strconv.Itoa(hl.Points)+"\n"), writeFile(path(h, faultFile), fault+"\n"))
	if err != nil {
		n.log.Error("writing track files", "err", err)
		return
	}
	n.log.Info("vrrp priority follows the uplinks", "priority", min(h.Priority+hl.Points, 254), "links_points", hl.Points, "fault", hl.Fault, "reason", hl.Reason)
}

// parseNotify reads one notify FIFO line: `INSTANCE "lan" MASTER 110` or
// `GROUP "multihome" BACKUP 0`.
func parseNotify(line string) (kind, name, state string, ok bool) {
	f := strings.Fields(line)
	if len(f) < 3 || len(f[1]) < 2 || f[1][0] != '"' || f[1][len(f[1])-1] != '"' {
		return "", "", "", false
	}
	return f[0], strings.Trim(f[1], `"`), f[2], true
}

// instanceStates are the notify states that are an instance's state.
// The others are events: MASTER_RX_LOWER_PRI says a master heard a
// lower-priority advert (the partner's, for a moment after both came up
// as master) and answered it; the instance is still master.
var instanceStates = map[string]bool{"MASTER": true, "BACKUP": true, "FAULT": true, "STOP": true, "DELETED": true}

// onNotify follows keepalived's reports. The role is the sync group's
// state (or the only instance's when there is no group).
func (n *Node) onNotify(ctx context.Context, line string) {
	kind, name, state, ok := parseNotify(line)
	if !ok {
		n.log.Warn("unreadable keepalived notify line", "line", line)
		return
	}
	h := n.config().HA
	grouped := len(h.Instances) > 1
	if kind == "INSTANCE" && instanceStates[state] {
		n.mu.Lock()
		n.st.Instances[name] = strings.ToLower(state)
		n.mu.Unlock()
	}
	if grouped && kind != "GROUP" || !grouped && kind != "INSTANCE" {
		return
	}
	var role Role
	switch state {
	case "MASTER":
		role = RoleMaster
	case "BACKUP":
		role = RoleBackup
	case "FAULT":
		role = RoleFault
	case "STOP", "DELETED":
		role = RoleStopped
	default:
		return // MASTER_RX_LOWER_PRI, priority changes
	}
	n.mu.Lock()
	prev := n.st.Role
	n.mu.Unlock()
	if role == prev {
		return
	}
	n.setRole(role, line)
	switch role {
	case RoleMaster:
		n.takeover(ctx)
	case RoleBackup, RoleFault:
		n.standDown(ctx, prev)
	}
}

// OnRole sets the function called with every new role (before Run).
func (n *Node) OnRole(f func(Role)) { n.onRole = f }

func (n *Node) setRole(r Role, why string) {
	n.mu.Lock()
	prev := n.st.Role
	n.st.Role, n.st.RoleSince = r, time.Now()
	n.mu.Unlock()
	if prev != r {
		n.log.Info("ha role changed", "from", prev, "to", r, "keepalived", why)
		if n.onRole != nil {
			n.onRole(r)
		}
	}
}

// takeover commits the partner's flows (conntrackd's external cache) into
// the kernel, then resyncs: the sequence of conntrackd's primary-backup.sh.
func (n *Node) takeover(ctx context.Context) {
	start := time.Now()
	var errs []error
	steps := []struct{ arg, what string }{
		{"-c", "commit the external cache"},
		{"-f", "flush the caches"},
		{"-R", "resync with the kernel table"},
		{"-B", "send a bulk update"},
	}
	if n.cfg.TransitLink() >= 0 {
		// Split uplinks (docs/ha.md): a flow that can go on is already
		// in this node's own table (it leaves by this node's uplink);
		// the partner's copy of it would replace it (conntrackd deletes
		// an existing entry to commit its own), NAT and mark lost.
		steps = steps[1:]
	}
	for _, step := range steps {
		if out, err := n.conntrackdCmd(ctx, step.arg); err != nil {
			errs = append(errs, fmt.Errorf("conntrackd %s (%s): %w: %s", step.arg, step.what, err, bytes.TrimSpace(out)))
		}
		if step.arg == "-c" {
			n.mu.Lock()
			n.st.LastCommit = time.Since(start)
			n.mu.Unlock()
		}
	}
	err := errors.Join(errs...)
	n.mu.Lock()
	n.st.LastTakeover = start
	n.st.Takeovers++
	n.st.LastCommitErr = ""
	if err != nil {
		n.st.LastCommitErr = err.Error()
	}
	commit := n.st.LastCommit
	n.mu.Unlock()
	if err != nil {
		n.log.Error("takeover: conntrackd", "err", err)
	}
	n.log.Info("took over: synced connections committed", "commit", commit.Round(time.Microsecond), "total", time.Since(start).Round(time.Microsecond))
}

// standDown hands the kernel's flows over, as primary-backup.sh does:
// -t (conntrackd 1.4.7 flushes the kernel table PurgeTimeout after it;
// the new master holds the flows by then, and a shared-uplinks standby
// forwards none) and a resync request.
func (n *Node) standDown(ctx context.Context, prev Role) {
	args := []string{"-t", "-n"}
	if n.cfg.TransitLink() >= 0 {
		// Split uplinks: the standby forwards the master's flows to its
		// own uplink; -t would flush them from its kernel table
		// (conntrackd flushes the table PurgeTimeout after -t).
		args = args[1:]
	}
	for _, arg := range args {
		if out, err := n.conntrackdCmd(ctx, arg); err != nil {
			n.log.Error("stand down: conntrackd", "arg", arg, "err", err, "out", string(bytes.TrimSpace(out)))
		}
	}
	if prev == RoleMaster {
		n.log.Info("stood down: the partner forwards; flows left to the sync")
	}
}

// pollSync reads conntrackd's statistics (-s) for the status.
func (n *Node) pollSync(ctx context.Context) {
	out, err := n.conntrackdCmd(ctx, "-s")
	n.mu.Lock()
	defer n.mu.Unlock()
	s := &n.st.Sync
	if err != nil {
		s.Error = strings.TrimSpace(fmt.Sprintf("%v: %s", err, out))
	} else {
		s.Error = ""
		st := parseStats(string(out))
		if st.received > s.BytesReceived {
			s.LastSeen = time.Now()
		}
		s.BytesReceived, s.Internal, s.External = st.received, st.internal, st.external
	}
	s.PartnerSeen = !s.LastSeen.IsZero() && time.Since(s.LastSeen) < 5*time.Second
}

type stats struct {
	internal, external int
	received           uint64
}

// parseStats reads `conntrackd -s`: the cache sections' "current active
// connections" and the sync link's "Bytes received".
func parseStats(s string) stats {
	var st stats
	section := ""
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "cache internal"):
			section = "internal"
		case strings.HasPrefix(t, "cache external"):
			section = "external"
		case strings.HasPrefix(t, "UDP traffic"), strings.HasPrefix(t, "multicast traffic"):
			section = "link"
		}
		f := strings.Fields(t)
		switch {
		case strings.HasPrefix(t, "current active connections:") && len(f) >= 4:
			v, _ := strconv.Atoi(f[3])
			if section == "internal" {
				st.internal = v
			} else if section == "external" {
				st.external = v
			}
		case section == "link":
			for i := 0; i+2 < len(f); i++ {
				if f[i+1] == "Bytes" && strings.HasPrefix(f[i+2], "recv") {
					st.received, _ = strconv.ParseUint(f[i], 10, 64)
				}
			}
		}
	}
	return st
}

// Status returns the pair's state as this node sees it.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.st
	st.Instances = map[string]string{}
	for k, v := range n.st.Instances {
		st.Instances[k] = v
	}
	st.Programs = nil
	for _, c := range []*child{n.ct, n.ka} {
		if c != nil {
			st.Programs = append(st.Programs, c.status())
		}
	}
	st.VirtualAddress = nil
	for _, in := range n.cfg.HA.Instances {
		for _, a := range in.VirtualAddresses {
			st.VirtualAddress = append(st.VirtualAddress, a.String()+" dev "+in.Interface)
		}
	}
	return st
}

// Update applies a reloaded config. What keepalived reads (priorities,
// advert interval, preemption, virtual addresses, instances) is applied
// live: keepalived.conf is rewritten and keepalived reloads it on SIGHUP.
// What conntrackd reads (the sync link) and the node's identity cannot
// change without dropping the standby's copy of the connections: such a
// reload is refused with the reason.
func (n *Node) Update(cfg *config.Config) error {
	old := n.config()
	if cfg.HA == nil {
		return errors.New("the section was removed: restart multihome to leave the pair")
	}
	o, h := old.HA, cfg.HA
	switch {
	case o.Node != h.Node || o.Partner != h.Partner:
		return fmt.Errorf("node/partner changed (%s/%s → %s/%s): restart multihome to apply that", o.Node, o.Partner, h.Node, h.Partner)
	case o.RunDir != h.RunDir || o.Keepalived != h.Keepalived || o.Conntrackd != h.Conntrackd:
		return errors.New("run_dir, keepalived or conntrackd changed: restart multihome to apply that")
	case RenderConntrackd(old) != RenderConntrackd(cfg):
		return errors.New("the sync link or the links' own addresses changed: conntrackd cannot reload, and restarting it would drop the standby's copy of the connections; restart multihome on each node in turn to apply that")
	}
	u := update{cfg: cfg, err: make(chan error, 1)}
	return bound.Handoff(n.updates, u, u.err, n.stopped, 5*time.Second)
}

// apply runs in Run's goroutine.
func (n *Node) apply(cfg *config.Config) error {
	pass, err := authPass(cfg.HA)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.cfg = cfg
	n.st.Priority = 0 // forces the track files out
	n.mu.Unlock()
	n.writeTrack(cfg, n.src.Snapshot())
	text := RenderKeepalived(cfg, pass)
	if have, err := os.ReadFile(path(cfg.HA, keepalivedConf)); err == nil && string(have) == text {
		return nil
	}
	if err := writeFile(path(cfg.HA, keepalivedConf), text); err != nil {
		return err
	}
	n.mu.Lock()
	ka := n.ka
	n.mu.Unlock()
	if st := ka.status(); st.Running && st.PID > 0 {
		if err := syscall.Kill(st.PID, syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload keepalived: %w", err)
		}
		n.log.Info("keepalived reloading its rendered config")
	}
	return nil
}
