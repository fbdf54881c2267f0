package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/examples"
)

// TestStrictPermissions: check-config and run warn about a config file
// group or others can read, refuse it with --strict, and accept it at
// mode 0600; dist/ installs the config 0600 and runs with --strict.
func TestStrictPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "multihome.yaml")
	if err := os.WriteFile(path, examples.Lab(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644) // whatever the umask
	out, err := exec.Command(binary, "check-config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "warning: "+path+": the config file "+path+" is accessible to group or others (mode 0644)") {
		t.Errorf("check-config on a 0644 file: %v, want ok with a warning:\n%s", err, out)
	}
	out, err = exec.Command(binary, "check-config", "--strict", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--strict: 1 file(s) readable by group or others") {
		t.Errorf("check-config --strict on a 0644 file: %v, want a refusal:\n%s", err, out)
	}
	cmd := exec.Command(binary, "run", "--strict", "--config", path)
	done := make(chan struct{})
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("run --strict on a 0644 config did not refuse to start")
	}
	if err == nil || !strings.Contains(string(out), "--strict") {
		t.Errorf("run --strict on a 0644 config: %v\n%s", err, out)
	}

	os.Chmod(path, 0o600)
	out, err = exec.Command(binary, "check-config", "--strict", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Errorf("check-config --strict on a 0600 file: %v\n%s", err, out)
	}

	unit, err := os.ReadFile("../dist/multihome.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"install -m 600 examples/lab.yaml /etc/multihome/multihome.yaml", "run --strict --config", "check-config --strict"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("dist/multihome.service lacks %q", want)
		}
	}
}
