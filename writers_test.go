package multihome

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOneRouteWriter: package route is the only writer of ip rules and
// routes (its owners hand it their desired state); the lab, which builds
// the namespaces multihome runs in, and tests may write them too.
func TestOneRouteWriter(t *testing.T) {
	write := regexp.MustCompile(`\.(RuleAdd|RuleDel|RouteAdd|RouteDel|RouteReplace|RouteAppend|RouteChange)\(|"ip",\s*"(-[46]",\s*)?"(rule|route)"`)
	files := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if (strings.HasPrefix(d.Name(), ".") && p != ".") || d.Name() == "testdata" || p == "route" || p == "lab" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "labtest") {
			return nil
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if write.MatchString(line) {
				t.Errorf("%s:%d writes ip rules or routes outside package route: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Errorf("looked at %d files only: is the walk broken?", files)
	}
}
