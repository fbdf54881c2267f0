package importer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is an element of a config.xml, with the line it starts on.
type node struct {
	name     string
	text     string
	line     int
	children []*node
}

// parseXML reads a document into a tree of elements; character data is
// kept (trimmed) for elements without children.
func parseXML(name string, data []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	var stack []*node
	var root *node
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s:%d: XML syntax: %s", name, se.Line, se.Msg)
			}
			return nil, fmt.Errorf("%s:%d: %w", name, lineAt(dec.InputOffset()), err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, line: lineAt(off)}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			if len(n.children) > 0 {
				n.text = ""
			}
			n.text = strings.TrimSpace(n.text)
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%s: no XML element", name)
	}
	return root, nil
}

// child returns the first child called name, or nil.
func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// all returns the children called name.
func (n *node) all(name string) []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// get returns the text of the child called name ("" if absent).
func (n *node) get(name string) string {
	if c := n.child(name); c != nil {
		return c.text
	}
	return ""
}

// has says whether the child is present (pfSense writes flags as empty
// elements: <monitor_disable/>; OPNsense as <x>1</x>, <x>0</x> for off).
func (n *node) has(name string) bool {
	c := n.child(name)
	return c != nil && c.text != "0"
}

// path walks down a slash-separated path of first children.
func (n *node) path(p string) *node {
	for _, s := range strings.Split(p, "/") {
		n = n.child(s)
	}
	return n
}
