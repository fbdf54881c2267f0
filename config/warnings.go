package config

import "fmt"

// SelfNeed is one use of a link's own address that the config does not
// give: a DNS "a: self" or "aaaa: self" record on a link without address4
// or address6. The daemon learns such addresses from the interface.
type SelfNeed struct {
	// Path is the record's field, e.g. "dns.zones[0].names[1].records[0].a".
	Path      string
	Link      string
	Interface string
	Family    int // 4 or 6
}

func (n SelfNeed) String() string {
	return fmt.Sprintf("%s: \"self\" needs link %s's IPv%d address, not known: interface %s has none", n.Path, n.Link, n.Family, n.Interface)
}

// SelfAddressNeeds lists the "self" records of c whose link has no
// address of that family in c (for the file's config: the ones that can
// only be learned; for the config in force: the ones not learned yet).
func SelfAddressNeeds(c *Config) []SelfNeed {
	if c.DNS == nil {
		return nil
	}
	var out []SelfNeed
	for zi, z := range c.DNS.Zones {
		for ni, n := range z.Names {
			for ri, r := range n.Records {
				l := c.LinkByName(r.Link)
				if l == nil {
					continue
				}
				p := fmt.Sprintf("dns.zones[%d].names[%d].records[%d]", zi, ni, ri)
				if r.A.Self && !l.Address4.IsValid() {
					out = append(out, SelfNeed{Path: p + ".a", Link: l.Name, Interface: l.Interface, Family: 4})
				}
				if r.AAAA.Self && !l.Address6.IsValid() {
					out = append(out, SelfNeed{Path: p + ".aaaa", Link: l.Name, Interface: l.Interface, Family: 6})
				}
			}
		}
	}
	return out
}

// Warnings returns what is valid but worth an operator's attention, with
// positions like errors: the config or secret files readable by others
// (PermissionProblems), uses of addresses that can only be learned at run
// time (the answers lack them until the interface has one).
func (c *Config) Warnings() Errors {
	ws := c.PermissionProblems()
	for _, n := range SelfAddressNeeds(c) {
		field := "address4"
		if n.Family == 6 {
			field = "address6"
		}
		p := c.Position(n.Path)
		ws = append(ws, &Error{File: c.File, Line: p.Line, Column: p.Column, Field: n.Path,
			Msg: fmt.Sprintf("\"self\" on link %s, which sets no %s: the address is learned from interface %s at run time, and the name is answered without it until then", n.Link, field, n.Interface)})
	}
	return ws
}
