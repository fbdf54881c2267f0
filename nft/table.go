package nft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/netns"
)

// Runner runs nft with args, feeding it stdin, and returns its standard
// output. The error includes nft's standard error.
type Runner func(ctx context.Context, stdin string, args ...string) ([]byte, error)

// Timeout bounds one nft run: a hung nft (a kernel stuck on a lock, a
// blocked netlink socket) is killed after it, counted in
// multihome_bound_timeouts_total{call="nft"} and logged, and its caller
// gets an error wrapping bound.ErrTimeout instead of waiting for ever.
var Timeout = 10 * time.Second

// Command returns a Runner that runs argv followed by the nft arguments:
// Command("nft") in the daemon's own namespace, Command("ip", "netns",
// "exec", NS, "nft") inside namespace NS. Each run is bounded by Timeout.
func Command(argv ...string) Runner {
	if len(argv) == 0 {
		argv = []string{"nft"}
	}
	return func(ctx context.Context, stdin string, args ...string) ([]byte, error) {
		var out, errb bytes.Buffer
		err := bound.Call(ctx, "nft", Timeout, func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, argv[0], append(append([]string{}, argv[1:]...), args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			cmd.Stdout, cmd.Stderr = &out, &errb
			// A killed nft's children could hold its pipes open.
			cmd.WaitDelay = time.Second
			return cmd.Run()
		})
		if err != nil {
			return out.Bytes(), fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return out.Bytes(), nil
	}
}

// CommandIn returns a Runner that runs nft inside the named network
// namespace: the process is forked from a thread switched into the
// namespace (netns.Do), which costs less than `ip netns exec`.
func CommandIn(ns string, argv ...string) Runner {
	run := Command(argv...)
	return func(ctx context.Context, stdin string, args ...string) ([]byte, error) {
		var out []byte
		err := netns.Do(ns, func() error {
			var err error
			out, err = run(ctx, stdin, args...)
			return err
		})
		return out, err
	}
}

// ErrNoTable is returned by [Table.Listing] when the table does not exist.
var ErrNoTable = errors.New("table does not exist")

// Table manages one nftables table through a Runner. It is not safe for
// concurrent use.
type Table struct {
	family, name string
	run          Runner
	applied      string   // terse listing right after our last Apply
	known        []object // chains and sets after our last Apply; nil: list them
	dirty        bool     // applied, listing not recorded yet
	last         *Ruleset // what the last Apply wrote; nil: unknown

	// gen, when set, lets Verify skip the listing while the namespace's
	// nftables generation is still seen (the one read just before the
	// listing that matched): nothing in nftables changed since.
	gen    GenFunc
	seen   uint32
	seenOK bool
}

// SetGeneration makes Verify (and Record) read the namespace's nftables
// generation with gen and list the table only when it changed. Listing
// costs O(set elements) (nft fetches them even for a terse listing):
// seconds with tens of thousands of sticky sources.
func (t *Table) SetGeneration(gen GenFunc) { t.gen = gen }

// generation reads the generation; ok is false without a GenFunc or on
// error (then the listing decides).
func (t *Table) generation(ctx context.Context) (uint32, bool) {
	if t.gen == nil {
		return 0, false
	}
	g, err := t.gen(ctx)
	return g, err == nil
}

// NewTable returns a Table for family and name, run with run.
func NewTable(run Runner, family, name string) *Table {
	return &Table{family: family, name: name, run: run}
}

func (t *Table) id() string { return t.family + " " + t.name }

type object struct {
	kind    string // chain or set
	name    string
	typ     string // sets
	timeout int64  // sets, seconds
	size    int    // sets; 0: none given
}

// objects lists the table's chains and sets; nil if the table is missing.
func (t *Table) objects(ctx context.Context) ([]object, bool, error) {
	out, err := t.run(ctx, "", "-j", "list", "table", t.family, t.name)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, false, nil
		}
		return nil, false, err
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, false, fmt.Errorf("parse nft json: %w", err)
	}
	var objs []object
	for _, o := range doc.Nftables {
		for kind, raw := range o {
			if kind != "chain" && kind != "set" && kind != "counter" {
				continue
			}
			var v struct {
				Name    string `json:"name"`
				Type    any    `json:"type"`
				Timeout int64  `json:"timeout"`
				Size    int    `json:"size"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, false, fmt.Errorf("parse nft json: %w", err)
			}
			typ, _ := v.Type.(string)
			objs = append(objs, object{kind: kind, name: v.Name, typ: typ, timeout: v.Timeout, size: v.Size})
		}
	}
	return objs, true, nil
}

// Script returns the nft transaction that replaces the table with rs,
// given the chains and sets now present (nil: no table). Every chain is
// deleted and recreated; sets whose definition is unchanged are kept with
// their elements, except those in flush, which are emptied.
func (t *Table) script(rs Ruleset, have []object, flush []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\nflush table %s\n", t.id(), t.id())
	want := map[string]Set{}
	for _, s := range rs.Sets {
		want[s.Name] = s
	}
	for _, o := range have {
		if o.kind == "chain" {
			fmt.Fprintf(&b, "delete chain %s %s\n", t.id(), o.name)
		}
	}
	kept := map[string]bool{}
	for _, o := range have {
		if o.kind != "set" {
			continue
		}
		if s, ok := want[o.name]; ok && s.Type == o.typ && int64(s.Timeout/time.Second) == o.timeout && s.Size == o.size {
			kept[o.name] = true
			continue
		}
		fmt.Fprintf(&b, "delete set %s %s\n", t.id(), o.name)
	}
	wantCounter := map[string]bool{}
	for _, c := range rs.Counters {
		wantCounter[c.Name] = true
	}
	for _, o := range have {
		if o.kind == "counter" && !wantCounter[o.name] {
			fmt.Fprintf(&b, "delete counter %s %s\n", t.id(), o.name)
		}
	}
	b.WriteString(rs.String())
	for _, name := range flush {
		if kept[name] {
			fmt.Fprintf(&b, "flush set %s %s\n", t.id(), name)
		}
	}
	return b.String()
}

// incremental returns a transaction that rewrites only the regular chains
// whose rules differ between last (what we applied) and rs, when nothing
// else differs: on a link state change only the policy chains change, and
// nft need not parse a thousand unchanged steering rules again.
func (t *Table) incremental(last, rs Ruleset, flush []string) (string, bool) {
	if len(last.Sets) != len(rs.Sets) || len(last.Chains) != len(rs.Chains) || !slices.Equal(last.Counters, rs.Counters) {
		return "", false
	}
	for i := range rs.Sets {
		a, b := last.Sets[i], rs.Sets[i]
		if a.Name != b.Name || a.Type != b.Type || a.Timeout != b.Timeout || a.Size != b.Size || a.Comment != b.Comment || strings.Join(a.Flags, ",") != strings.Join(b.Flags, ",") {
			return "", false
		}
	}
	var b strings.Builder
	for i := range rs.Chains {
		o, n := last.Chains[i], rs.Chains[i]
		if o.Name != n.Name || o.Hook != n.Hook || o.Type != n.Type || o.Priority != n.Priority || o.Policy != n.Policy || o.Comment != n.Comment {
			return "", false
		}
		if slices.Equal(o.Rules, n.Rules) {
			continue
		}
		if n.Hook != "" {
			return "", false // keep base chains to full replacements
		}
		fmt.Fprintf(&b, "flush chain %s %s\n", t.id(), n.Name)
		for _, r := range n.Rules {
			fmt.Fprintf(&b, "add rule %s %s %s\n", t.id(), n.Name, r)
		}
	}
	for _, name := range flush {
		fmt.Fprintf(&b, "flush set %s %s\n", t.id(), name)
	}
	return b.String(), true
}

// Apply replaces the table with rs in one transaction: packets see either
// the old table or the new one. Elements of sets that stay are kept,
// except for the sets named in flush. Call [Table.Record] when the time
// critical work that follows is done (or let Verify do it).
func (t *Table) Apply(ctx context.Context, rs Ruleset, flush []string) error {
	if rs.Family != t.family || rs.Name != t.name {
		return fmt.Errorf("ruleset is for table %s %s, not %s", rs.Family, rs.Name, t.id())
	}
	have := t.known
	if have == nil {
		var err error
		if have, _, err = t.objects(ctx); err != nil {
			return err
		}
	}
	script := t.script(rs, have, flush)
	if t.last != nil {
		if inc, ok := t.incremental(*t.last, rs, flush); ok {
			script = inc
		}
	}
	if script == "" { // nothing in the table changes
		return nil
	}
	t.known, t.applied, t.dirty, t.last = nil, "", false, nil
	t.seenOK = false
	if _, err := t.run(ctx, script, "-f", "-"); err != nil {
		return err
	}
	t.dirty = true
	cp := rs
	t.last = &cp
	for _, s := range rs.Sets {
		t.known = append(t.known, object{kind: "set", name: s.Name, typ: s.Type, timeout: int64(s.Timeout / time.Second), size: s.Size})
	}
	for _, c := range rs.Chains {
		t.known = append(t.known, object{kind: "chain", name: c.Name})
	}
	for _, c := range rs.Counters {
		t.known = append(t.known, object{kind: "counter", name: c.Name})
	}
	return nil
}

// Record remembers the table's current listing as the one the last Apply
// produced, for [Table.Verify]. It does nothing if nothing was applied
// since the last Record.
func (t *Table) Record(ctx context.Context) error {
	if !t.dirty {
		return nil
	}
	g, gok := t.generation(ctx) // before the listing: a change after it shows
	l, err := t.Listing(ctx)
	if err != nil {
		return err
	}
	t.applied, t.dirty = l, false
	t.seen, t.seenOK = g, gok
	return nil
}

// Listing returns the table as nft lists it, without set elements and
// without the counters' values (`nft -s -t list table`: counting packets
// is not a change), or ErrNoTable.
func (t *Table) Listing(ctx context.Context) (string, error) {
	out, err := t.run(ctx, "", "-s", "-t", "list", "table", t.family, t.name)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return "", ErrNoTable
		}
		return "", err
	}
	return string(out), nil
}

// Verify reports whether the table is still what the last Apply left
// (false also when nothing was applied yet or the table is gone).
func (t *Table) Verify(ctx context.Context) (bool, error) {
	if t.dirty {
		return true, t.Record(ctx)
	}
	g, gok := t.generation(ctx)
	if gok && t.seenOK && g == t.seen && t.applied != "" {
		return true, nil // no nftables transaction since the listing that matched
	}
	l, err := t.Listing(ctx)
	if errors.Is(err, ErrNoTable) {
		t.known, t.last, t.seenOK = nil, nil, false
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok := t.applied != "" && l == t.applied
	t.seen, t.seenOK = g, ok && gok
	if !ok {
		t.known, t.last = nil, nil
	}
	return ok, nil
}

// Exists reports whether the table exists.
func (t *Table) Exists(ctx context.Context) (bool, error) {
	_, ok, err := t.objects(ctx)
	return ok, err
}

// Delete removes the table; a missing table is not an error.
func (t *Table) Delete(ctx context.Context) error {
	t.applied, t.known, t.dirty, t.last = "", nil, false, nil
	t.seenOK = false
	ok, err := t.Exists(ctx)
	if err != nil || !ok {
		return err
	}
	_, err = t.run(ctx, "", "delete", "table", t.family, t.name)
	return err
}
