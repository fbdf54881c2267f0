package multihome

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLayoutTable: the README's layout table names every package of the
// tree, and only those.
func TestLayoutTable(t *testing.T) {
	tree := map[string]bool{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && filepath.Dir(p) != "." {
			tree[filepath.ToSlash(filepath.Dir(p))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Layout")
	if i < 0 {
		t.Fatal("README.md has no Layout section")
	}
	section := readme[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	listed := map[string]bool{}
	cell := regexp.MustCompile("`([a-z0-9/-]+)`")
	for _, line := range strings.Split(section, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 3 {
			continue
		}
		for _, m := range cell.FindAllStringSubmatch(cols[1], -1) {
			listed[m[1]] = true
		}
	}
	for p := range tree {
		if !listed[p] {
			t.Errorf("package %s is not in the README's layout table", p)
		}
	}
	for p := range listed {
		if !tree[p] {
			t.Errorf("the README's layout table lists %s, which is not a package of the tree", p)
		}
	}
}
