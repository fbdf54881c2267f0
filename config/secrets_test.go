package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFilesRelativeToConfig: a relative token_file or secret_file is
// read from the config file's directory whatever the working directory,
// and the files group or others can read are reported.
func TestSecretFilesRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := `links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
api: {listen: "198.51.100.2:8080", token_file: secrets/token}
dns:
  listen: ["198.51.100.2:53"]
  keys:
    - {name: xfr, algorithm: hmac-sha256, secret_file: secrets/xfr.key}
  zones:
    - name: example.com
      soa: {rname: hostmaster.example.com.}
      records: ["@ NS ns1", "ns1 A 198.51.100.2"]
`
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"token": "tok\n", "xfr.key": "c2VjcmV0c2VjcmV0c2VjcmV0\n"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "multihome.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // anywhere but the config's directory

	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "secrets/token"); c.API.TokenFile != want {
		t.Errorf("api.token_file = %q, want %q", c.API.TokenFile, want)
	}
	if s, err := c.DNS.Keys[0].KeySecret(); err != nil || s != "c2VjcmV0c2VjcmV0c2VjcmV0" {
		t.Errorf("tsig secret from secret_file: %q, %v", s, err)
	}
	if got := c.SecretFiles(); len(got) != 2 || got[0].Field != "dns.keys[0].secret_file" && got[1].Field != "dns.keys[0].secret_file" {
		t.Errorf("secret files: %+v", got)
	}
	if ps := c.PermissionProblems(); len(ps) != 0 {
		t.Errorf("mode 0600 files reported: %v", ps)
	}

	os.Chmod(path, 0o644)
	os.Chmod(filepath.Join(dir, "secrets", "token"), 0o640)
	c, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := c.PermissionProblems()
	if len(ps) != 2 {
		t.Fatalf("problems with a 0644 config and a 0640 token file: %v", ps)
	}
	for i, want := range []string{path + ": the config file " + path + " is accessible to group or others (mode 0644)",
		path + ":3:48: api.token_file: secret file " + filepath.Join(dir, "secrets/token") + " is accessible to group or others (mode 0640)"} {
		if !strings.HasPrefix(ps[i].Error(), want) {
			t.Errorf("problem %d = %q, want it to start %q", i, ps[i], want)
		}
	}
	if ws := c.Warnings(); len(ws) != 2 {
		t.Errorf("warnings: %v, want the two permission problems", ws)
	}
}
