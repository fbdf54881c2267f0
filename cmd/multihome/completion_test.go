package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// helpFlags runs a command with -h and returns the flags its usage lists.
func helpFlags(t *testing.T, name string, args []string) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	_ = commands[name].run(append(args, "-h"))
	os.Stderr = old
	w.Close()
	out := <-done
	var flags []string
	re := regexp.MustCompile(`^\s+-([a-z][a-z0-9-]*)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			flags = append(flags, m[1])
		}
	}
	sort.Strings(flags)
	return flags
}

// TestCompletionFlags checks the completion table against every
// command's real flags (its -h output), so a new flag or command cannot
// be forgotten.
func TestCompletionFlags(t *testing.T) {
	for _, name := range commandNames() {
		spec, ok := completionSpec[name]
		if !ok {
			t.Errorf("command %s has no completionSpec entry", name)
			continue
		}
		if name == "version" || name == "completion" {
			continue // no flags
		}
		var want []string
		for _, f := range spec.flags {
			if name != "import" || f.name != "network" {
				want = append(want, f.name)
			}
		}
		sort.Strings(want)
		var args []string
		if name == "import" {
			args = []string{"pfsense"}
			if got := helpFlags(t, name, []string{"mwan3"}); !slices.Contains(got, "network") {
				t.Errorf("import mwan3 -h lists %v, no -network", got)
			}
		}
		if name == "link" {
			args = []string{"down"}
		}
		if got := helpFlags(t, name, args); !slices.Equal(got, want) {
			t.Errorf("%s: -h lists flags %v, completion offers %v", name, got, want)
		}
	}
	for name := range completionSpec {
		if _, ok := commands[name]; !ok {
			t.Errorf("completionSpec has %s, which is not a command", name)
		}
	}
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var b bytes.Buffer
	var err error
	if shell == "bash" {
		err = writeBash(&b)
	} else {
		err = writeZsh(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// complete runs the bash completion function on a command line and
// returns its answers.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	prog := script + "\nCOMP_WORDS=(" + strings.Join(words, " ") + ")\nCOMP_CWORD=" +
		string(rune('0'+len(words)-1)) + "\n_multihome\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	out, err := exec.Command("bash", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	s := completionScript(t, "bash")
	f, _ := os.CreateTemp(t.TempDir(), "c*.bash")
	f.WriteString(s)
	f.Close()
	if out, err := exec.Command("bash", "-n", f.Name()).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	if got := complete(t, s, "multihome", "''"); !slices.Equal(got, commandNames()) {
		t.Errorf("commands: %v, want %v", got, commandNames())
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"multihome", "imp"}, "import"},
		{[]string{"multihome", "import", "''"}, "mwan3 pfsense"},
		{[]string{"multihome", "run", "--dr"}, "--dry-run"},
		{[]string{"multihome", "link", "dr"}, "drain"},
		{[]string{"multihome", "audit", "--format", "''"}, "text json dot svg"},
		{[]string{"multihome", "completion", "''"}, "bash zsh"},
		{[]string{"multihome", "import", "mwan3", "--n"}, "--network"},
	} {
		if got := strings.Join(complete(t, s, c.words...), " "); got != c.want {
			t.Errorf("%v: %q, want %q", c.words, got, c.want)
		}
	}
}

func TestCompletionZsh(t *testing.T) {
	s := completionScript(t, "zsh")
	for _, n := range commandNames() {
		if !strings.Contains(s, "\n        '"+n+":") || !strings.Contains(s, "\n        "+n+")\n") {
			t.Errorf("zsh script lacks command %s", n)
		}
	}
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("no zsh (scripts/deps.sh installs it): syntax not checked")
	}
	f, _ := os.CreateTemp(t.TempDir(), "_multihome")
	f.WriteString(s)
	f.Close()
	if out, err := exec.Command("zsh", "-n", f.Name()).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}

// zshComplete runs the zsh completion function on a command line with
// the completion system's functions stubbed to print what they are given.
func zshComplete(t *testing.T, path string, words ...string) string {
	t.Helper()
	prog := `_describe() { print -r -- "${(@P)2}" }
compadd() { shift; print -r -- "$@" }
_arguments() { shift; print -r -- "$@" }
source ` + path + `
words=(` + strings.Join(words, " ") + `)
CURRENT=${#words}
_multihome`
	out, err := exec.Command("zsh", "-f", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCompletionZshRuns(t *testing.T) {
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("no zsh (scripts/deps.sh installs it)")
	}
	f, _ := os.CreateTemp(t.TempDir(), "_multihome")
	f.WriteString(completionScript(t, "zsh"))
	f.Close()
	if got := zshComplete(t, f.Name(), "multihome", "''"); !strings.Contains(got, "import:convert another tool's config") ||
		!strings.Contains(got, "check-config:validate a config file") {
		t.Errorf("commands: %q", got)
	}
	if got := zshComplete(t, f.Name(), "multihome", "import", "''"); got != "mwan3 pfsense" {
		t.Errorf("import: %q", got)
	}
	if got := zshComplete(t, f.Name(), "multihome", "audit", "--"); !strings.Contains(got, "--format[output format]:format:(text json dot svg)") {
		t.Errorf("audit flags: %q", got)
	}
	if got := zshComplete(t, f.Name(), "multihome", "run", "--"); !strings.Contains(got, "--config[config file]:file:_files") {
		t.Errorf("run flags: %q", got)
	}
}
