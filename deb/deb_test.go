package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
)

func TestVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.0":                  "1.2.0",
		"v1.2.0-dirty":            "1.2.0+dirty",
		"v1.2.0-5-gabc1234":       "1.2.0+git5.abc1234",
		"v1.2.0-5-gabc1234-dirty": "1.2.0+git5.abc1234.dirty",
		"abc1234":                 "0.0.0~gitabc1234",
		"abc1234-dirty":           "0.0.0~gitabc1234.dirty",
		"dev":                     "0.0.0~gitdev",
	} {
		if got := Version(in); got != want {
			t.Errorf("Version(%q) = %q, want %q", in, got, want)
		}
	}
}

// arEntries reads an ar archive (the .deb container).
func arEntries(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatal("not an ar archive")
	}
	out := map[string][]byte{}
	var order []string
	for p := 8; p+60 <= len(b); {
		h := b[p : p+60]
		name := strings.TrimSuffix(strings.TrimSpace(string(h[0:16])), "/")
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		if err != nil || string(h[58:60]) != "`\n" {
			t.Fatalf("bad ar header %q", h)
		}
		p += 60
		out[name] = b[p : p+size]
		order = append(order, name)
		p += size + size%2
	}
	if strings.Join(order, " ") != "debian-binary control.tar.gz data.tar.gz" {
		t.Fatalf("ar members %v, want debian-binary control.tar.gz data.tar.gz", order)
	}
	return out
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func tgz(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out["/"+strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")] = entry{h, data}
	}
}

// TestPackage packages the test binary itself (an ELF for this machine)
// as the daemon, and checks the package's metadata, maintainer scripts
// and contents by reading the .deb (ar + tar), then with dpkg-deb when it
// is installed. make package checks the real packages with
// TestBuiltPackages.
func TestPackage(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("packages are built for amd64 and arm64, this is %s", runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	root, _ := filepath.Abs("..")
	bash, zsh := filepath.Join(tmp, "c.bash"), filepath.Join(tmp, "c.zsh")
	os.WriteFile(bash, []byte("_multihome() { :; }\ncomplete -o filenames -F _multihome multihome\n"), 0o644)
	os.WriteFile(zsh, []byte("#compdef multihome\n"), 0o644)
	s := Spec{Arch: runtime.GOARCH, Version: "v1.2.0-5-gabc1234", Binary: exe, Root: root, Bash: bash, Zsh: zsh, MTime: time.Unix(1767225600, 0)}
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, FileName(s))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	checkDeb(t, s.Arch, "1.2.0+git5.abc1234", path, false)
	// Same input, same package: builds are reproducible.
	var again bytes.Buffer
	if err := Build(&again, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("two builds of the same input differ")
	}
	if err := Build(io.Discard, Spec{Arch: "mips"}); err == nil {
		t.Error("mips accepted")
	}
}

// TestBuiltPackages checks the packages `make package` built (the
// MULTIHOME_DEBS list): real static binaries for their architecture and
// the generated completion scripts.
func TestBuiltPackages(t *testing.T) {
	debs := strings.Fields(os.Getenv("MULTIHOME_DEBS"))
	if len(debs) == 0 {
		t.Skip("MULTIHOME_DEBS not set: make package runs this on the packages it builds")
	}
	for _, p := range debs {
		// multihome_VERSION_ARCH.deb
		f := strings.Split(strings.TrimSuffix(filepath.Base(p), ".deb"), "_")
		if len(f) != 3 || f[0] != "multihome" {
			t.Fatalf("%s: not multihome_VERSION_ARCH.deb", p)
		}
		t.Run(f[2], func(t *testing.T) { checkDeb(t, f[2], f[1], p, true) })
	}
}

func checkDeb(t *testing.T, arch, version, path string, real bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ar := arEntries(t, b)
	if string(ar["debian-binary"]) != "2.0\n" {
		t.Errorf("debian-binary %q", ar["debian-binary"])
	}
	ctl := tgz(t, ar["control.tar.gz"])
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(ctl["/control"].data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok && !strings.HasPrefix(k, " ") {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{"Package": "multihome", "Version": version, "Architecture": arch,
		"Section": "net", "Priority": "optional", "Depends": "nftables", "Homepage": "https://github.com/multihome/multihome"} {
		if fields[k] != want {
			t.Errorf("control %s: %q, want %q", k, fields[k], want)
		}
	}
	if fields["Maintainer"] == "" || !strings.HasPrefix(fields["Description"], "multihoming controller") {
		t.Errorf("control: %q", ctl["/control"].data)
	}
	if got := string(ctl["/conffiles"].data); got != ConfigPath+"\n" {
		t.Errorf("conffiles %q, want %s", got, ConfigPath)
	}
	for _, s := range []string{"/postinst", "/prerm", "/postrm"} {
		e, ok := ctl[s]
		if !ok || e.hdr.Mode&0o111 == 0 {
			t.Errorf("maintainer script %s missing or not executable", s)
			continue
		}
		if out, err := exec.Command("sh", "-n", "-c", string(e.data)).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v %s", s, err, out)
		}
	}
	data := tgz(t, ar["data.tar.gz"])
	// md5sums lists every regular file with its checksum.
	sums := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(ctl["/md5sums"].data)), "\n") {
		sum, p, _ := strings.Cut(l, "  ")
		sums["/"+p] = sum
	}
	for p, e := range data {
		if e.hdr.Typeflag != tar.TypeReg {
			continue
		}
		h := md5.Sum(e.data)
		if sums[p] != hex.EncodeToString(h[:]) {
			t.Errorf("md5sums: %s %q, data %x", p, sums[p], h)
		}
		if e.hdr.Uname != "root" || e.hdr.Gname != "root" {
			t.Errorf("%s owned by %s:%s", p, e.hdr.Uname, e.hdr.Gname)
		}
	}
	want := map[string]int64{BinPath: 0o755, UnitPath: 0o644, ConfigPath: 0o600, ManPath: 0o644, BashPath: 0o644, ZshPath: 0o644,
		GrafanaPath: 0o644, DocDir + "/README.md": 0o644, DocDir + "/config.md": 0o644, DocDir + "/import.md": 0o644,
		DocDir + "/metrics.md": 0o644, DocDir + "/examples/minimal.yaml": 0o644, "/etc/multihome": 0o700}
	for p, mode := range want {
		e, ok := data[p]
		if !ok {
			t.Errorf("%s is not in the package", p)
			continue
		}
		if e.hdr.Mode&0o7777 != mode {
			t.Errorf("%s mode %o, want %o", p, e.hdr.Mode&0o7777, mode)
		}
	}
	// The binary is for arch, static (CGO_ENABLED=0).
	f, err := elf.NewFile(bytes.NewReader(data[BinPath].data))
	if err != nil {
		t.Fatal(err)
	}
	if m := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != m {
		t.Errorf("binary is for %v, want %v", f.Machine, m)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP && real {
			t.Error("binary has an ELF interpreter: not static (CGO_ENABLED=0)")
		}
	}
	if real && arch == runtime.GOARCH {
		// The packaged binary runs here: it reads the packaged config.
		dir := t.TempDir()
		bin, cfg := filepath.Join(dir, "multihome"), filepath.Join(dir, "multihome.yaml")
		os.WriteFile(bin, data[BinPath].data, 0o755)
		os.WriteFile(cfg, data[ConfigPath].data, 0o600)
		for _, args := range [][]string{{"version"}, {"check-config", "--strict", cfg}} {
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Errorf("packaged multihome %v: %v\n%s", args, err, out)
			}
		}
	}
	unit := string(data[UnitPath].data)
	if !regexp.MustCompile(`(?m)^ExecStart=`+BinPath+` run .*--config `+ConfigPath+`$`).MatchString(unit) || strings.Contains(unit, "/usr/local/bin") {
		t.Errorf("unit does not run %s:\n%s", BinPath, unit)
	}
	if _, err := config.Parse(ConfigPath, data[ConfigPath].data); err != nil {
		t.Errorf("packaged config: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data[ManPath].data))
	if err != nil {
		t.Fatal(err)
	}
	man, _ := io.ReadAll(zr)
	if !bytes.Contains(man, []byte(".TH MULTIHOME 8")) {
		t.Error("man page is not multihome(8)")
	}
	if !json.Valid(data[GrafanaPath].data) {
		t.Error("Grafana dashboard is not JSON")
	}
	if !bytes.Contains(data[BashPath].data, []byte("complete -o filenames -F _multihome multihome")) ||
		!bytes.HasPrefix(data[ZshPath].data, []byte("#compdef multihome")) ||
		real && !bytes.Contains(data[BashPath].data, []byte("import")) {
		t.Error("completion scripts are not multihome's")
	}
	// dpkg's own reading of the package, when dpkg-deb is there.
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return
	}
	info, err := exec.Command("dpkg-deb", "--info", path).CombinedOutput()
	if err != nil || !bytes.Contains(info, []byte("Package: multihome")) || !bytes.Contains(info, []byte("Architecture: "+arch)) {
		t.Errorf("dpkg-deb --info: %v\n%s", err, info)
	}
	list, err := exec.Command("dpkg-deb", "--contents", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, list)
	}
	for _, l := range strings.Split(string(list), "\n") {
		if strings.HasSuffix(l, "."+ConfigPath) && !strings.HasPrefix(l, "-rw------- root/root") {
			t.Errorf("dpkg-deb lists the config as %q", l)
		}
	}
	if !bytes.Contains(list, []byte("."+BinPath)) {
		t.Errorf("dpkg-deb --contents has no %s", BinPath)
	}
}
