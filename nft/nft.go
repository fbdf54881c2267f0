// Package nft owns multihome's nftables table: a model of one table
// ([Ruleset]: sets and chains of rule text), its rendering as `nft -f`
// input, and [Table], which replaces the table in the kernel atomically,
// in one nft transaction, keeping the elements of the sets that survive
// (sticky sources), and checks later that nobody changed it.
//
// The nft binary does the work (as with sigs.k8s.io/knftables); a [Runner]
// says how to start it, so tests and the lab can run it inside a network
// namespace (`ip netns exec NS nft`).
package nft

import (
	"fmt"
	"strings"
	"time"
)

// Ruleset is one nftables table.
type Ruleset struct {
	Family string // "inet"
	Name   string // "multihome"
	// Header lines are written as # comments before the table.
	Header []string
	// Counters are named counter objects, which rules count into with
	// `counter name "NAME"`: they keep their value when the table is
	// replaced and can be read alone ([Table.Counters]).
	Counters []Counter
	Sets     []Set
	Chains   []Chain
}

// Counter is a named counter object.
type Counter struct {
	Name    string
	Comment string
}

// Set is a named set of addresses with a timeout (the only kind
// multihome needs: sticky sources).
type Set struct {
	Name    string
	Type    string // ipv4_addr, ipv6_addr
	Flags   []string
	Timeout time.Duration
	// Size is the most elements the set holds (0: nft's default, 65535
	// for a dynamic set); a full set takes no new element.
	Size    int
	Comment string
}

// Chain is a chain: a base chain when Hook is set.
type Chain struct {
	Name     string
	Type     string // filter, route, nat (base chains)
	Hook     string
	Priority string // e.g. "mangle", "srcnat", "-150"
	Policy   string // accept (base chains)
	Comment  string
	Rules    []string
}

// Script renders the table as `nft -f` input that defines it.
func (r Ruleset) String() string {
	var b strings.Builder
	for _, h := range r.Header {
		b.WriteString("# ")
		b.WriteString(h)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "table %s %s {\n", r.Family, r.Name)
	for i, c := range r.Counters {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\tcounter %s {\n", c.Name)
		if c.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %s\n", Quote(c.Comment))
		}
		b.WriteString("\t}\n")
	}
	for i, s := range r.Sets {
		if i > 0 || len(r.Counters) > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", s.Name, s.Type)
		if len(s.Flags) > 0 {
			fmt.Fprintf(&b, "\t\tflags %s\n", strings.Join(s.Flags, ","))
		}
		if s.Timeout > 0 {
			fmt.Fprintf(&b, "\t\ttimeout %s\n", nftDuration(s.Timeout))
		}
		if s.Size > 0 {
			fmt.Fprintf(&b, "\t\tsize %d\n", s.Size)
		}
		if s.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %s\n", Quote(s.Comment))
		}
		b.WriteString("\t}\n")
	}
	for i, c := range r.Chains {
		if i > 0 || len(r.Sets) > 0 || len(r.Counters) > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Comment != "" {
			fmt.Fprintf(&b, "\t\tcomment %s\n", Quote(c.Comment))
		}
		if c.Hook != "" {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy %s;\n", c.Type, c.Hook, c.Priority, c.Policy)
		}
		for _, rule := range c.Rules {
			b.WriteString("\t\t")
			b.WriteString(rule)
			b.WriteByte('\n')
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// Quote returns s as an nft string literal.
func Quote(s string) string {
	return `"` + strings.NewReplacer(`"`, `'`, "\n", " ", `\`, `/`).Replace(s) + `"`
}

// nftDuration writes d the way nft lists it (1h2m3s, 10m, 500ms).
func nftDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	var b strings.Builder
	s := int64(d / time.Second)
	for _, u := range []struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if s >= u.n {
			fmt.Fprintf(&b, "%d%s", s/u.n, u.name)
			s %= u.n
		}
	}
	return b.String()
}
