package importer

import (
	"fmt"
	"slices"
)

// member is one link in a source policy, with its tier (mwan3 metric,
// pfSense tier: lower is preferred) and weight.
type member struct {
	link         *link
	tier, weight int
	name         string // the source's name for it, for notes
}

// tiered is a source policy: its multihome policy, members and the name
// notes use.
type tiered struct {
	p       *policy
	members []member
	src     string // e.g. "policy wan_wanb", "gateway group Failover"
	pos     string
	unit    string // what the source calls a tier: "metric", "tier"
}

// assignTiers gives every link one priority and weight, and each policy
// its type. The sources give tier and weight per member of each policy;
// multihome has one priority (failover tier) and one weight per link.
// They come from the first policy of order (most important first) that
// has the link. Policies that order or weigh their members otherwise are
// noted: multihome will use the links' order and weights for them.
func assignTiers(d *doc, order []tiered) {
	from := map[*link]string{}
	for _, t := range order {
		for _, x := range t.members {
			if _, done := from[x.link]; !done {
				x.link.prio, x.link.weight, from[x.link] = x.tier, x.weight, t.src
			}
		}
	}
	for _, t := range order {
		p, ms := t.p, t.members
		p.typ = "weighted"
		for _, x := range ms {
			if x.tier != ms[0].tier {
				p.typ = "failover"
			}
		}
		for i, a := range ms {
			for _, b := range ms[i+1:] {
				cmpT, cmpP := sign(a.tier-b.tier), sign(a.link.prio-b.link.prio)
				if p.typ == "weighted" {
					cmpP = 0 // weighted ignores priorities
				}
				if cmpT != cmpP {
					p.notes = append(p.notes, Note{t.pos, fmt.Sprintf("%s: %s (%s %d) and %s (%s %d) are in another order or tier than the links' priorities\n"+
						"(%s %d from %s, %s %d from %s): multihome has one priority per link, so this policy uses the links' order",
						t.src, a.link.name, t.unit, a.tier, b.link.name, t.unit, b.tier, a.link.name, a.link.prio, from[a.link], b.link.name, b.link.prio, from[b.link])})
				} else if cmpT == 0 && a.weight*b.link.weight != b.weight*a.link.weight {
					p.notes = append(p.notes, Note{t.pos, fmt.Sprintf("%s: weights %s %d : %s %d differ from the links' weights %d : %d (from %s, %s): multihome has one weight per link",
						t.src, a.link.name, a.weight, b.link.name, b.weight, a.link.weight, b.link.weight, from[a.link], from[b.link])})
				}
			}
		}
	}
	for _, l := range d.links {
		if l.weight == 1 {
			l.weight = 0 // the default
		}
	}
	if !slices.ContainsFunc(d.links, func(l *link) bool { return l.prio > 1 }) {
		for _, l := range d.links {
			l.prio = 0
		}
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}
