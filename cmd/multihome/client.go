package main

// The commands that talk to a running daemon through its API: status,
// events, link (and reload). Each takes --api and --token.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/multihome/multihome/ha"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/mptcp"
)

// clientFlags are the flags every API command takes.
type clientFlags struct {
	addr, token string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("MULTIHOME_API")
	if def == "" {
		def = api.DefaultListen
	}
	fs.StringVar(&c.addr, "api", def, "API address: unix:/path, host:port or URL (env MULTIHOME_API)")
	fs.StringVar(&c.token, "token", os.Getenv("MULTIHOME_TOKEN"), "API bearer token (env MULTIHOME_TOKEN)")
}

func (c *clientFlags) client() (*api.Client, error) {
	return api.NewClient(c.addr, c.token)
}

// explain turns the usual failures into advice.
func (c *clientFlags) explain(err error) error {
	var ae *api.APIError
	var ne *net.OpError
	switch {
	case errors.As(err, &ae) && ae.Code == 401:
		return fmt.Errorf("%w (the API wants a token: --token or MULTIHOME_TOKEN)", err)
	case errors.As(err, &ne) && ne.Op == "dial":
		return fmt.Errorf("cannot reach the daemon at %s: %v (is multihome running? --api sets the address)", c.addr, ne.Err)
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdStatus(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return runStatus(ctx, os.Stdout, args)
}

func runStatus(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: multihome status [--json] [--api ADDR] [--token T]\n\nShows every link's state, quality and load; with BGP, every neighbour's session,\nannouncements, received and imported routes and BFD; with IPv6, the LAN prefixes;\nwith HA, this node's role in the pair, the partner and the sync; with MPTCP,\nthe endpoints kept in the kernel, with their flags and links.")
		fs.PrintDefaults()
	}
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	o, err := c.Status(ctx)
	if err != nil {
		return cf.explain(err)
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(o)
	}
	writeStatus(w, o)
	var ae *api.APIError
	b, err := c.BGP(ctx)
	switch {
	case errors.As(err, &ae) && ae.Code == 404: // no bgp section
	case err != nil:
		return cf.explain(fmt.Errorf("bgp: %w", err))
	default:
		fmt.Fprintln(w)
		writeBGP(w, o.Time, b)
	}
	h, err := c.HA(ctx)
	switch {
	case errors.As(err, &ae) && ae.Code == 404: // no ha section
	case err != nil:
		return cf.explain(fmt.Errorf("ha: %w", err))
	default:
		fmt.Fprintln(w)
		writeHA(w, o.Time, h)
	}
	st, err := c.IPv6(ctx)
	switch {
	case errors.As(err, &ae) && ae.Code == 404: // no ipv6 section
	case err != nil:
		return cf.explain(fmt.Errorf("ipv6 prefixes: %w", err))
	default:
		fmt.Fprintln(w)
		writeIPv6(w, st)
	}
	m, err := c.MPTCP(ctx)
	switch {
	case errors.As(err, &ae) && ae.Code == 404: // no mptcp section
	case err != nil:
		return cf.explain(fmt.Errorf("mptcp: %w", err))
	default:
		fmt.Fprintln(w)
		writeMPTCP(w, m)
	}
	return nil
}

// writeMPTCP prints the "MPTCP" block: each link of mptcp.links with
// what MPTCP may do with it and why, then the kernel's endpoint table
// (the operator's endpoints marked) and the last apply's error.
func writeMPTCP(out io.Writer, st mptcp.Status) {
	var w strings.Builder
	defer func() { // no padding after the last column
		for _, l := range strings.SplitAfter(w.String(), "\n") {
			if l != "" {
				fmt.Fprintln(out, strings.TrimRight(l, " \n"))
			}
		}
	}()
	fmt.Fprintf(&w, "MPTCP (limits: subflows %d, add_addr_accepted %d)\n", st.Limits.Subflows, st.Limits.AddAddrAccepted)
	tw := tabwriter.NewWriter(&w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tSTATE\tMODE\tENDPOINTS\tREASON")
	for _, l := range st.Links {
		ids := make([]string, len(l.Endpoints))
		for i, id := range l.Endpoints {
			ids[i] = fmt.Sprint(id)
		}
		eps := strings.Join(ids, " ")
		if eps == "" {
			eps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Link, l.State, l.Mode, eps, l.Reason)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(&w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tFLAGS\tLINK\tINTERFACE")
	for _, ep := range st.Endpoints {
		link, iface := ep.Link, ep.Interface
		if ep.Operator {
			link = "(operator)"
		}
		if iface == "" {
			iface = "-"
		}
		addr := ep.Address.String()
		if ep.Port != 0 {
			addr = netip.AddrPortFrom(ep.Address, ep.Port).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", ep.ID, addr, strings.Join(ep.Flags, " "), link, iface)
	}
	tw.Flush()
	if st.Error != "" {
		fmt.Fprintf(&w, "error: %s\n", st.Error)
	}
}

// writeHA prints the "HA" block: this node's role in the pair, the
// partner and the sync, the last takeover and the two daemons.
func writeHA(w io.Writer, now time.Time, h ha.Status) {
	fmt.Fprintln(w, "HA")
	fault := ""
	if h.Fault {
		fault = " (fault: " + h.FaultReason + ")"
	}
	fmt.Fprintf(w, "  node %s: %s for %s, priority %d (links +%d)%s\n", h.Node, h.Role, fmtSince(now, h.RoleSince), h.Priority, h.LinksPoints, fault)
	seen := "not seen"
	if h.Sync.PartnerSeen {
		seen = "seen " + fmtSince(now, h.Sync.LastSeen) + " ago"
	}
	fmt.Fprintf(w, "  partner %s: %s; sync: %d own flows, %d of the partner's held\n", h.Partner, seen, h.Sync.Internal, h.Sync.External)
	if h.Sync.Error != "" {
		fmt.Fprintf(w, "  sync error: %s\n", h.Sync.Error)
	}
	if h.Takeovers > 0 {
		fmt.Fprintf(w, "  last takeover %s ago (%d in all), commit took %s", fmtSince(now, h.LastTakeover), h.Takeovers, h.LastCommit.Round(time.Microsecond))
		if h.LastCommitErr != "" {
			fmt.Fprintf(w, ", error: %s", h.LastCommitErr)
		}
		fmt.Fprintln(w)
	}
	for _, p := range h.Programs {
		state := "stopped"
		if p.Running {
			state = fmt.Sprintf("running (pid %d) for %s", p.PID, fmtSince(now, p.Since))
		}
		fmt.Fprintf(w, "  %-10s %s, %d restarts", p.Name, state, p.Restarts)
		if p.LastExit != "" {
			fmt.Fprintf(w, ", last exit: %s", p.LastExit)
		}
		fmt.Fprintln(w)
	}
}

// writeBGP prints the "BGP" table: per neighbour its session state and
// for how long, what it is sent (the prefixes, with prepends, or
// withdrawn), what it sends (received, and imported into its link's
// table) and its BFD session.
func writeBGP(w io.Writer, now time.Time, b api.BGPList) {
	fmt.Fprintln(w, "BGP")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NEIGHBOR\tLINK\tAS\tSTATE\tFOR\tANNOUNCED\tRECEIVED\tIMPORTED\tBFD\tREASON")
	for _, n := range b.Neighbors {
		ps := make([]string, len(n.Prefixes))
		for i, p := range n.Prefixes {
			ps[i] = p.String()
		}
		ann := strings.Join(ps, " ")
		switch {
		case n.Withdrawn:
			ann = "withdrawn"
		case n.Prepend > 0:
			ann += fmt.Sprintf(" (+%d prepends)", n.Prepend)
		}
		imp := "-"
		if n.Import != "none" && n.Import != "" {
			imp = fmt.Sprintf("%d (%s)", n.Imported, n.Import)
			if n.ImportLimited {
				imp += " limited"
			}
		}
		bfd := n.BFD
		if bfd == "" {
			bfd = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", n.Neighbor, n.Link, n.PeerAS, n.State, fmtSince(now, n.Since),
			ann, n.PrefixesReceived, imp, bfd, n.Reason)
	}
	tw.Flush()
}

// writeIPv6 prints the "IPv6 prefixes" table: each LAN prefix, where it
// comes from, its state and the lifetimes advertised; for a delegated
// prefix, when the lease is renewed and ends; then the firewall sets.
func writeIPv6(w io.Writer, st api.IPv6Status) {
	fmt.Fprintf(w, "IPv6 prefixes (%s on %s)\n", st.Mode, st.LAN)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tPREFIX\tSOURCE\tSTATE\tPREFERRED\tVALID\tRENEW\tLEASE ENDS\tREASON")
	for _, p := range st.Prefixes {
		link, prefix, pref, valid, renew, ends := p.Link, "-", "-", "-", "-", "-"
		if link == "" {
			link = "-"
		}
		if p.Prefix.IsValid() {
			prefix = p.Prefix.String()
		}
		if p.State != api.IPv6Pending {
			pref, valid = fmtLifetime(p.PreferredLifetime), fmtLifetime(p.ValidLifetime)
		}
		if l := p.Lease; l != nil {
			renew, ends = fmtUntil(st.Time, l.RenewAt), fmtUntil(st.Time, l.ValidUntil)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", link, prefix, p.Source, p.State, pref, valid, renew, ends, p.Reason)
	}
	tw.Flush()
	for _, s := range st.FirewallSets {
		ps := make([]string, len(s.Prefixes))
		for i, p := range s.Prefixes {
			ps[i] = p.String()
		}
		state := "ok"
		if s.Error != "" {
			state = "error: " + s.Error
		}
		fmt.Fprintf(w, "firewall set %s %s %s: {%s} %s\n", s.Family, s.Table, s.Set, strings.Join(ps, ", "), state)
	}
}

// fmtLifetime shows an advertised lifetime in seconds.
func fmtLifetime(s int64) string {
	if s >= 0xffffffff {
		return "infinite"
	}
	return (time.Duration(s) * time.Second).String()
}

// fmtUntil shows how long until t: "in 29m59s", or "passed".
func fmtUntil(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	switch {
	case d < 0:
		return "passed"
	case d < 48*time.Hour:
		return "in " + d.Truncate(time.Second).String()
	case d > 50*365*24*time.Hour:
		return "never"
	}
	return fmt.Sprintf("in %dd", int(d.Hours()/24))
}

func writeStatus(w io.Writer, o api.Overview) {
	var extra []string
	if o.Degraded > 0 {
		extra = append(extra, fmt.Sprintf("%d degraded", o.Degraded))
	}
	if o.Draining > 0 {
		extra = append(extra, fmt.Sprintf("%d draining", o.Draining))
	}
	if o.AdminDown > 0 {
		extra = append(extra, fmt.Sprintf("%d forced down", o.AdminDown))
	}
	line := fmt.Sprintf("multihome: %s, %d of %d link(s) up", o.Health, o.Healthy, o.Links)
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	fmt.Fprintln(w, line)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINK\tSTATE\tADMIN\tRTT\tLOSS\tUTIL DOWN\tUTIL UP\tTARGETS\tSINCE\tREASON")
	for _, l := range o.Summary {
		state := l.State
		if l.HoldDown {
			state += " (hold-down)"
		}
		if l.Saturated {
			state += " (saturated)"
		}
		admin := l.Admin
		if admin == "none" {
			admin = "-"
		}
		rtt, loss := "-", "-"
		if l.RTT > 0 {
			rtt = fmtRTT(l.RTT)
		}
		if l.State != "unknown" {
			loss = fmt.Sprintf("%.1f%%", l.Loss*100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n",
			l.Link, state, admin, rtt, loss, fmtUtil(l.UtilDown, l.RateDown), fmtUtil(l.UtilUp, l.RateUp),
			l.TargetsUp, l.TargetsTotal, fmtSince(o.Time, l.Since), l.Reason)
	}
	tw.Flush()
	for _, l := range o.Summary {
		for _, m := range l.Warnings {
			fmt.Fprintf(w, "warning: %s: %s\n", l.Link, m)
		}
	}
}

func fmtRTT(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtUtil shows utilisation, or the rate when no capacity is configured.
func fmtUtil(util float64, bps uint64) string {
	if util > 0 {
		return fmt.Sprintf("%.0f%%", util*100)
	}
	if bps > 0 {
		return fmtRate(bps)
	}
	return "-"
}

func fmtRate(bps uint64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1fGbit/s", float64(bps)/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1fMbit/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0fkbit/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%dbit/s", bps)
}

// fmtSince shows how long ago t was, to the second under an hour.
func fmtSince(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func cmdEvents(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := runEvents(ctx, os.Stdout, args)
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C ends --follow
	}
	return err
}

func runEvents(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	limit := fs.Int("limit", 20, "how many past events to show")
	link := fs.String("link", "", "only this link's events")
	follow := fs.Bool("follow", false, "keep printing new events as they happen (Ctrl-C ends)")
	fs.BoolVar(follow, "f", false, "short for --follow")
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: multihome events [--follow] [--limit N] [--link NAME] [--json] [--api ADDR] [--token T]\n\nShows the decision log: every link state change, config reload and BGP\nannouncement decision (announce, prepend N, withdraw), with its reason.")
		fs.PrintDefaults()
	}
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	print := func(e api.Entry) error {
		if *asJSON {
			return json.NewEncoder(w).Encode(e)
		}
		_, err := fmt.Fprintln(w, formatEntry(e))
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	list, err := c.Events(lctx, *limit, *link)
	cancel()
	if err != nil {
		return cf.explain(err)
	}
	for _, e := range list.Events {
		if err := print(e); err != nil {
			return err
		}
	}
	if !*follow {
		return nil
	}
	c.Skipped = func(n uint64) {
		// Not on w: --json's output stays one entry per line.
		fmt.Fprintf(os.Stderr, "multihome: %d entries skipped: this client fell behind the decision log\n", n)
	}
	return cf.explain(c.Stream(ctx, list.Last, *link, true, print))
}

// formatEntry renders a decision log entry on one line.
func formatEntry(e api.Entry) string {
	ts := e.Time.Local().Format("2006-01-02 15:04:05.000")
	var what string
	switch e.Kind {
	case "bgp":
		what = e.To
		if e.From != "" {
			what = e.From + " -> " + e.To
		}
		e.Reason = "neighbor " + e.Neighbor + ": " + e.Reason
	case "reload":
		what = "ok"
		if e.Error != "" {
			what = "rejected"
		}
	case "admin":
		if e.Status != nil {
			what = e.Status.Admin
		}
	default:
		if e.From != e.To {
			what = e.From + " -> " + e.To
		} else {
			what = e.To
		}
		if e.Neighbor != "" { // a BGP neighbour's BFD session
			e.Reason = "neighbor " + e.Neighbor + ": " + e.Reason
		}
		if e.Kind == "saturation" && e.Status != nil {
			what = "not saturated"
			if e.Status.Saturated {
				what = "saturated"
			}
		}
	}
	link := e.Link
	if link == "" {
		link = "-"
	}
	s := fmt.Sprintf("%s  %-10s %-10s %-18s %s", ts, link, e.Kind, what, e.Reason)
	if e.Error != "" {
		s += ": " + strings.ReplaceAll(e.Error, "\n", "; ")
	}
	return strings.TrimRight(s, " ")
}

func cmdLink(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return runLink(ctx, os.Stdout, args)
}

func runLink(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("link", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	reason := fs.String("reason", "", "why, for the decision log")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: multihome link down|drain|up NAME [--reason R] [--api ADDR] [--token T]

  down   force the link down: its traffic moves to the other links
  drain  keep the link's existing flows but give it no new ones
  up     clear the override: the link follows its health again`)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("want an action and a link name")
	}
	action, name := pos[0], pos[1]
	switch action {
	case "down", "drain", "up", "clear":
	default:
		return fmt.Errorf("unknown action %q: want down, drain or up", action)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	l, err := c.Action(ctx, name, action, *reason)
	if err != nil {
		return cf.explain(err)
	}
	var what string
	switch l.Admin {
	case "down":
		what = "forced down"
	case "drain":
		what = "draining: existing flows stay, new ones go elsewhere"
	default:
		what = "no override: follows its health"
	}
	fmt.Fprintf(w, "%s: %s (state %s)\n", l.Link, what, l.State)
	return nil
}

// cmdReload asks the daemon to re-read its config file.
func cmdReload(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return runReload(ctx, os.Stdout, args)
}

func runReload(ctx context.Context, w io.Writer, args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	r, err := c.Reload(ctx)
	if err != nil {
		return cf.explain(err)
	}
	fmt.Fprintf(w, "reloaded %s: %d link(s)\n", r.File, r.Links)
	return nil
}
