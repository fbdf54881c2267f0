package uci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := `# leading comment
package mwan3

config globals 'globals'
	option mmx_mask '0x3F00' # trailing comment

config interface wan
	option enabled 1
	list track_ip '1.0.0.1'
	list track_ip "1.1.1.1"
	list track_ip 208.67.222.222
	option descr "say \"hi\"; it's"
	option glued 'a b'"c"d\ e

config rule
	option proto tcp ; option dest_port 443

config rule
	option multi 'line one
line two'
	option after x

config interface wan
	option up 3
`
	f, err := Parse("mwan3", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f.Package != "mwan3" {
		t.Errorf("package %q", f.Package)
	}
	var got []string
	for _, s := range f.Sections {
		got = append(got, s.Type+" "+s.Name)
	}
	want := []string{"globals globals", "interface wan", "rule @rule[0]", "rule @rule[1]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sections %q, want %q", got, want)
	}
	wan := f.Section("wan")
	if l := wan.List("track_ip"); !reflect.DeepEqual(l, []string{"1.0.0.1", "1.1.1.1", "208.67.222.222"}) {
		t.Errorf("track_ip %q", l)
	}
	if o := wan.Option("track_ip"); o.Line != 11 || !o.List {
		t.Errorf("track_ip line %d list %v", o.Line, o.List)
	}
	checks := map[string]string{"descr": `say "hi"; it's`, "glued": "a bcd e", "enabled": "1", "up": "3"}
	for k, v := range checks {
		if g, _ := wan.Get(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if v, _ := f.Section("globals").Get("mmx_mask"); v != "0x3F00" {
		t.Errorf("mmx_mask %q", v)
	}
	r0 := f.Section("@rule[0]")
	if p, _ := r0.Get("dest_port"); p != "443" || !r0.Anonymous {
		t.Errorf("rule0 dest_port %q anonymous %v", p, r0.Anonymous)
	}
	r1 := f.Section("@rule[1]")
	if v, _ := r1.Get("multi"); v != "line one\nline two" {
		t.Errorf("multi %q", v)
	}
	if o := r1.Option("after"); o.Line != 21 {
		t.Errorf("line after a two-line value: %d, want 21", o.Line)
	}
	if n := len(f.Of("interface")); n != 1 {
		t.Errorf("%d interface sections, want 1 (repeated named sections merge)", n)
	}
}

func TestOptionThenList(t *testing.T) {
	f, err := Parse("x", []byte("config a b\n list l 1\n list l 2\n option l '3 4'\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := f.Section("b").Option("l")
	if o.List || !reflect.DeepEqual(o.Values, []string{"3 4"}) {
		t.Errorf("option after list: %+v", o)
	}
	if l := f.Section("b").List("l"); !reflect.DeepEqual(l, []string{"3", "4"}) {
		t.Errorf("List of an option: %q", l)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"option a b\n", "f:1: option outside of a config section"},
		{"config a\n\toption x\n", "f:2: want option NAME VALUE, got 1 words"},
		{"config a\n\toption x 'unterminated\n", "f:2: unterminated single quote"},
		{"config a\n\toption x \"unterminated\n", "f:2: unterminated double quote"},
		{"config a b c d\n", "f:1: want config TYPE [NAME], got 4 words"},
		{"config a 'b-c'\n", `f:1: bad section name "b-c"`},
		{"\n\nconfig a\n  bogus x y\n", `f:4: unknown keyword "bogus"`},
		{"config a\n option x-y 1\n", `f:2: bad option name "x-y"`},
		{"config a s\nconfig b s\n", `f:2: section "s" redefined with type "b" (type "a" on line 1)`},
	} {
		_, err := Parse("f", []byte(c.src))
		var e *Error
		if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %s", c.src, err, c.want)
		}
	}
}

// FuzzParse checks that no input panics, and that every parsed file
// survives a round trip through Format.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.uci")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("config a 'b'\n\tlist x \"1\\\"\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := Parse("fuzz", b)
		if err != nil {
			return
		}
		again, err := Parse("fuzz", []byte(Format(u)))
		if err != nil {
			t.Fatalf("formatted file does not parse: %v\n%s", err, Format(u))
		}
		if Format(again) != Format(u) {
			t.Fatalf("round trip changed the file:\n%s\n---\n%s", Format(u), Format(again))
		}
	})
}
