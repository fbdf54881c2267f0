package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBGPOneErrorPerMistake: each mistake in the bgp section gives one
// error, in words (no Go parser text), and no knock-on error from a field
// that is already invalid.
func TestBGPOneErrorPerMistake(t *testing.T) {
	const ok = "bgp:\n  asn: 64500\n  prefixes: [192.0.2.0/24]\n  neighbors:\n" +
		"    - {link: isp1, address: 198.51.100.1, asn: 64501}\n    - {link: isp2, address: 198.51.100.17, asn: 64502}\n"
	for _, tc := range []struct{ name, from, to, want string }{
		{"the issue's bad prefix", "192.0.2.0/24", "192.0.2.300/24",
			`bgp.prefixes[0]: bad prefix "192.0.2.300/24": IPv4 field has value >255; want an address and a length, like 192.0.2.0/24 or 2001:db8::/48`},
		{"prefix without length", "192.0.2.0/24", "192.0.2.0",
			`bgp.prefixes[0]: bad prefix "192.0.2.0": no '/'`},
		{"bad neighbour address", "address: 198.51.100.1,", "address: 198.51.100.1.1,",
			`bgp.neighbors[0].address: bad address "198.51.100.1.1"`},
		{"bad local address", "address: 198.51.100.1,", "address: 198.51.100.1, local_address: 198.51.100,",
			`bgp.neighbors[0].local_address: bad address "198.51.100"`},
		{"bad router id", "asn: 64500\n", "asn: 64500\n  router_id: 1.2.3\n",
			`bgp.router_id: bad address "1.2.3"`},
		{"bad asn", "asn: 64501}", "asn: AS64501}",
			`bgp.neighbors[0].asn: want a non-negative integer, got "AS64501"`},
		{"unknown link", "link: isp1,", "link: isp9,", `bgp.neighbors[0].link: unknown link "isp9"`},
		{"bad import entry", "asn: 64501}", "asn: 64501, import: full, import_prefixes: [203.0.113.0/24 le]}",
			`bgp.neighbors[0].import_prefixes[0]: "203.0.113.0/24 le": le needs a length`},
		{"both passwords", "asn: 64501}", "asn: 64501, password: a, password_file: pw}",
			`bgp.neighbors[0].password_file: give password or password_file, not both`},
		{"long password", "asn: 64501}", "asn: 64501, password: " + strings.Repeat("x", 81) + "}",
			`bgp.neighbors[0].password: is 81 bytes long: TCP MD5 keys are at most 80`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(ok, tc.from, tc.to, 1)
			if y == ok {
				t.Fatal("test case replaces nothing")
			}
			_, err := Parse("bgp.yaml", []byte(bgpLinks+y))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("accepted, or not a config error: %v", err)
			}
			if len(es) != 1 || !strings.Contains(es[0].Error(), tc.want) {
				t.Fatalf("got %d error(s):\n%v\nwant one containing %s", len(es), err, tc.want)
			}
			if strings.Contains(err.Error(), "netip.") || strings.Contains(err.Error(), "ParseAddr(") {
				t.Errorf("Go parser text in %v", err)
			}
		})
	}
}

// TestBGPPasswordFile: password_file is read relative to the config
// file's directory, gives the session's MD5 password, and its problems
// are errors that never show the password.
func TestBGPPasswordFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets/isp1.pw", "s3cret-md5\n")
	write("empty.pw", "\n")
	write("two.pw", "s3cret\nmore\n")
	conf := func(pw string) string {
		return bgpLinks + "bgp:\n  asn: 64500\n  prefixes: [192.0.2.0/24]\n  neighbors:\n    - {link: isp1, address: 198.51.100.1, asn: 64501, password_file: " + pw + "}\n"
	}
	load := func(pw string) (*Config, error) {
		path := filepath.Join(dir, "multihome.yaml")
		if err := os.WriteFile(path, []byte(conf(pw)), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(path)
	}
	c, err := load("secrets/isp1.pw")
	if err != nil {
		t.Fatal(err)
	}
	n := c.BGP.Neighbors[0]
	if n.MD5Password() != "s3cret-md5" || n.PasswordFile != filepath.Join(dir, "secrets/isp1.pw") {
		t.Errorf("password %q from %s", n.MD5Password(), n.PasswordFile)
	}
	if c, err := load(filepath.Join(dir, "secrets/isp1.pw")); err != nil || c.BGP.Neighbors[0].MD5Password() != "s3cret-md5" {
		t.Errorf("absolute path: %v", err)
	}
	for _, tc := range []struct{ file, want string }{
		{"missing.pw", "bgp.neighbors[0].password_file: cannot read " + filepath.Join(dir, "missing.pw") + ": no such file or directory"},
		{"empty.pw", "bgp.neighbors[0].password_file: " + filepath.Join(dir, "empty.pw") + " is empty"},
		{"two.pw", "holds more than one line"},
	} {
		_, err := load(tc.file)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.file, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the password is in the error: %v", tc.file, err)
		}
	}
}

// TestDocsPasswordFileExample loads docs/bgp.md's password_file example
// (a block headed "# /etc/multihome/multihome.yaml": it needs its secret
// file next to it, so the generic docs test does not load it).
func TestDocsPasswordFileExample(t *testing.T) {
	b, err := os.ReadFile("../docs/bgp.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if !strings.HasPrefix(block, "# /etc/multihome/multihome.yaml") {
			continue
		}
		n++
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "secrets"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "secrets/isp1-md5"), []byte("example-md5-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "multihome.yaml")
		if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatalf("docs/bgp.md example %d: %v", n, err)
		}
		if pw := c.BGP.Neighbors[0].MD5Password(); pw != "example-md5-key" {
			t.Errorf("example %d: password %q", n, pw)
		}
	}
	if n == 0 {
		t.Fatal("no password_file example in docs/bgp.md")
	}
}
