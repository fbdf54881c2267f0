package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/multihome/multihome/config"
)

func TestImportMWAN3(t *testing.T) {
	out := filepath.Join(t.TempDir(), "multihome.yaml")
	var stdout, stderr bytes.Buffer
	err := runImport([]string{"mwan3", "--network", "../../importer/testdata/mwan3/network.uci", "-o", out,
		"../../importer/testdata/mwan3/twowan.uci"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("with -o, stdout got %q", stdout.String())
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("output file: %v %v", fi, err)
	}
	if _, err := config.Load(out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "note: ../../importer/testdata/mwan3/twowan.uci:127: rule streaming: matches ipset streaming") {
		t.Errorf("stderr does not list the unmapped ipset rule:\n%s", stderr.String())
	}
}

func TestImportUsage(t *testing.T) {
	var o, e bytes.Buffer
	for _, args := range [][]string{nil, {"openbsd"}, {"mwan3"}, {"mwan3", "a", "b"}} {
		if err := runImport(args, &o, &e); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%q: %v", args, err)
		}
	}
	if err := runImport([]string{"mwan3", "/nonexistent"}, &o, &e); err == nil {
		t.Error("missing file: no error")
	}
}
