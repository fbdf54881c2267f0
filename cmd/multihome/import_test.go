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

func TestImportPfSense(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := runImport([]string{"pfsense", "../../importer/testdata/pfsense/loadbalance.xml"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	cfg, err := config.Parse("stdout.yaml", stdout.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Links) != 2 || cfg.Outbound.Policies[0].Name != "LoadBalance" {
		t.Errorf("links %d, policies %+v", len(cfg.Links), cfg.Outbound.Policies)
	}
	if !strings.Contains(stderr.String(), "imported ../../importer/testdata/pfsense/loadbalance.xml: ") {
		t.Errorf("stderr: %s", stderr.String())
	}
	// A gateway without a monitor IP or a static address gives a link
	// with nothing to probe: written, but refused as check-config would.
	bad := filepath.Join(t.TempDir(), "config.xml")
	os.WriteFile(bad, []byte(`<pfsense><interfaces><wan><if>igb0</if></wan></interfaces>
<gateways><gateway_item><interface>wan</interface><gateway>dynamic</gateway><name>WAN_DHCP</name></gateway_item></gateways></pfsense>`), 0o644)
	stdout.Reset()
	stderr.Reset()
	err = runImport([]string{"pfsense", bad}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "does not pass check-config") || !strings.Contains(stderr.String(), "links[0].probes") || stdout.Len() == 0 {
		t.Errorf("err %v\nstderr %s", err, stderr.String())
	}
}
