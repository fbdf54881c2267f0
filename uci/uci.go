// Package uci parses OpenWrt's UCI configuration files (/etc/config/*):
// `package`, `config TYPE [NAME]`, `option NAME VALUE` and `list NAME
// VALUE` lines, with single and double quotes, backslash escapes,
// anonymous sections and comments. Every section and option keeps the line
// it was read from, so that importers can point at it.
package uci

import (
	"fmt"
	"strings"
)

// File is one parsed UCI file.
type File struct {
	// Name is the file name used in errors and positions.
	Name string
	// Package is the name given by a `package` line ("" if none).
	Package  string
	Sections []*Section
}

// Section is one `config TYPE [NAME]` block.
type Section struct {
	Type string
	// Name is the section's name; anonymous sections get "@TYPE[N]", N
	// counting the sections of that type from 0, as uci(1) shows them.
	Name      string
	Anonymous bool
	Line      int
	Options   []*Option
}

// Option is an `option` or the collected `list` lines of one name.
type Option struct {
	Name   string
	Values []string // one value for an option, every element for a list
	List   bool
	Line   int // where it was (last) set
}

// Error is a syntax error with its position.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Option returns the option called name, or nil.
func (s *Section) Option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns the value of an option (the elements of a list joined by
// spaces, as uci get prints them) and whether it is set.
func (s *Section) Get(name string) (string, bool) {
	o := s.Option(name)
	if o == nil {
		return "", false
	}
	return strings.Join(o.Values, " "), true
}

// List returns the values of a list, or of an option split on white space
// (UCI consumers such as config_list_foreach accept both).
func (s *Section) List(name string) []string {
	o := s.Option(name)
	if o == nil {
		return nil
	}
	if o.List {
		return o.Values
	}
	return strings.Fields(o.Values[0])
}

// Of returns the sections of one type, in file order.
func (f *File) Of(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Section returns the section called name, or nil.
func (f *File) Section(name string) *Section {
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Parse reads a UCI file. name is used in error messages. One switch over
// the four statement keywords, each with its checks, so that every syntax
// error of a statement is raised next to the rule it breaks.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Name: name}
	count := map[string]int{}
	var cur *Section
	lx := lexer{src: string(data), line: 1}
	for {
		words, line, err := lx.statement()
		if err != nil {
			return nil, &Error{File: name, Line: lx.line, Msg: err.Error()}
		}
		if words == nil {
			break
		}
		if len(words) == 0 {
			continue
		}
		fail := func(format string, a ...any) error {
			return &Error{File: name, Line: line, Msg: fmt.Sprintf(format, a...)}
		}
		switch kw := words[0]; kw {
		case "package":
			if len(words) != 2 {
				return nil, fail("package takes one name, got %d words", len(words)-1)
			}
			f.Package = words[1]
		case "config":
			if len(words) < 2 || len(words) > 3 {
				return nil, fail("want config TYPE [NAME], got %d words", len(words)-1)
			}
			if !validName(words[1]) {
				return nil, fail("bad section type %q: letters, digits and '_'", words[1])
			}
			cur = &Section{Type: words[1], Line: line}
			if len(words) == 3 {
				if !validName(words[2]) {
					return nil, fail("bad section name %q: letters, digits and '_'", words[2])
				}
				cur.Name = words[2]
			} else {
				cur.Anonymous = true
				cur.Name = fmt.Sprintf("@%s[%d]", words[1], count[words[1]])
			}
			count[words[1]]++
			if prev := f.Section(cur.Name); prev != nil && !cur.Anonymous {
				if prev.Type != cur.Type {
					return nil, fail("section %q redefined with type %q (type %q on line %d)", cur.Name, cur.Type, prev.Type, prev.Line)
				}
				cur = prev // uci merges a repeated named section
				continue
			}
			f.Sections = append(f.Sections, cur)
		case "option", "list":
			if cur == nil {
				return nil, fail("%s outside of a config section", kw)
			}
			if len(words) != 3 {
				return nil, fail("want %s NAME VALUE, got %d words (quote values with spaces)", kw, len(words)-1)
			}
			if !validName(words[1]) {
				return nil, fail("bad option name %q: letters, digits and '_'", words[1])
			}
			o := cur.Option(words[1])
			if o == nil {
				o = &Option{Name: words[1]}
				cur.Options = append(cur.Options, o)
			}
			if kw == "option" || !o.List {
				o.Values = o.Values[:0]
			}
			o.List = kw == "list"
			o.Values = append(o.Values, words[2])
			o.Line = line
		default:
			return nil, fail("unknown keyword %q: want package, config, option or list", kw)
		}
	}
	return f, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// lexer splits the input into statements of words, following libuci:
// words are separated by blanks; a statement ends at a newline or ';'
// outside quotes; '#' at the start of a word starts a comment; 'single'
// quotes take everything literally, "double" quotes and bare words take
// backslash escapes; quoted parts and bare parts next to each other form
// one word; quotes may span lines.
type lexer struct {
	src  string
	pos  int
	line int
}

// statement returns the next statement's words and its first line; nil
// words at the end of input, an empty slice for a blank line.
func (l *lexer) statement() ([]string, int, error) {
	if l.pos >= len(l.src) {
		return nil, l.line, nil
	}
	words := []string{}
	start := l.line
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\n':
			l.pos++
			l.line++
			return words, start, nil
		case c == ';':
			l.pos++
			return words, start, nil
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		default:
			w, err := l.word()
			if err != nil {
				return nil, start, err
			}
			words = append(words, w)
		}
	}
	return words, start, nil
}

// word reads one word made of quoted and bare parts.
func (l *lexer) word() (string, error) {
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case ' ', '\t', '\r', '\n', ';':
			return b.String(), nil
		case '\'':
			l.pos++
			end := strings.IndexByte(l.src[l.pos:], '\'')
			if end < 0 {
				return "", fmt.Errorf("unterminated single quote (opened here)")
			}
			s := l.src[l.pos : l.pos+end]
			l.line += strings.Count(s, "\n")
			b.WriteString(s)
			l.pos += end + 1
		case '"':
			l.pos++
			open := l.line
			closed := false
			for l.pos < len(l.src) && !closed {
				d := l.src[l.pos]
				l.pos++
				switch d {
				case '"':
					closed = true
				case '\\':
					if l.pos >= len(l.src) {
						l.line = open
						return "", fmt.Errorf("unterminated double quote")
					}
					l.escaped(&b)
				default:
					if d == '\n' {
						l.line++
					}
					b.WriteByte(d)
				}
			}
			if !closed {
				l.line = open
				return "", fmt.Errorf("unterminated double quote (opened here)")
			}
		case '\\':
			l.pos++
			if l.pos < len(l.src) {
				l.escaped(&b)
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return b.String(), nil
}

// escaped writes the character after a backslash; a backslash before a
// newline continues the line.
func (l *lexer) escaped(b *strings.Builder) {
	d := l.src[l.pos]
	l.pos++
	if d == '\n' {
		l.line++
		return
	}
	b.WriteByte(d)
}

// Format writes f back in uci's canonical form (uci export): single
// quotes, tabs, one blank line between sections. Anonymous sections are
// written without a name.
func Format(f *File) string {
	var b strings.Builder
	if f.Package != "" {
		fmt.Fprintf(&b, "package %s\n\n", quote(f.Package))
	}
	for _, s := range f.Sections {
		b.WriteString("config " + s.Type)
		if !s.Anonymous {
			b.WriteString(" " + quote(s.Name))
		}
		b.WriteString("\n")
		for _, o := range s.Options {
			kw := "option"
			if o.List {
				kw = "list"
			}
			for _, v := range o.Values {
				fmt.Fprintf(&b, "\t%s %s %s\n", kw, o.Name, quote(v))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// quote writes v in single quotes; a single quote inside is closed,
// escaped and reopened: 'it'\”s'.
func quote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
