package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestManPage checks that dist/multihome.8 describes every command and
// every flag of the binary, and that groff reads it without a warning.
func TestManPage(t *testing.T) {
	b, err := os.ReadFile("../../dist/multihome.8")
	if err != nil {
		t.Fatal(err)
	}
	man := string(b)
	_, cmds, ok := strings.Cut(man, "\n.SH COMMANDS\n")
	if !ok {
		t.Fatal("no COMMANDS section")
	}
	cmds, _, _ = strings.Cut(cmds, "\n.SH ")
	roff := func(s string) string { return strings.ReplaceAll(s, "-", `\-`) }
	for _, n := range commandNames() {
		if !strings.Contains(cmds, ".TP\n.B "+roff(n)) {
			t.Errorf("COMMANDS has no .TP entry for %s", n)
		}
		for _, f := range completionSpec[n].flags {
			dash := `\-\-`
			if len(f.name) == 1 {
				dash = `\-`
			}
			if !strings.Contains(man, ".B "+dash+roff(f.name)) && !strings.Contains(man, " "+dash+roff(f.name)) {
				t.Errorf("flag %s of %s is not in the man page", f.name, n)
			}
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("no groff (scripts/deps.sh installs groff-base): not linted")
	}
	out, err := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z", "../../dist/multihome.8").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff -ww: %v\n%s", err, out)
	}
}
