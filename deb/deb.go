// Package deb builds multihome's Debian packages with nfpm: the binary,
// the systemd unit, the config as a conffile (mode 0600), the docs, the
// man page, bash and zsh completions and the Grafana dashboard. `make
// package` runs it through cmd/multihome-deb for amd64 and arm64.
package deb

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

// Spec says what to package.
type Spec struct {
	// Arch is the Go and Debian architecture: amd64 or arm64.
	Arch string
	// Version is a Debian version or `git describe` output (see Version).
	Version string
	// Binary is the multihome binary built for Arch.
	Binary string
	// Root is the repository root: dist/, docs/, examples/, README.md.
	Root string
	// Bash and Zsh are the completion scripts (multihome completion ...).
	Bash, Zsh string
	// MTime is every file's time (default: SOURCE_DATE_EPOCH, else now),
	// so that a build is reproducible.
	MTime time.Time
}

// The paths the package installs.
const (
	BinPath     = "/usr/bin/multihome"
	UnitPath    = "/lib/systemd/system/multihome.service"
	ConfigPath  = "/etc/multihome/multihome.yaml"
	ManPath     = "/usr/share/man/man8/multihome.8.gz"
	DocDir      = "/usr/share/doc/multihome"
	BashPath    = "/usr/share/bash-completion/completions/multihome"
	ZshPath     = "/usr/share/zsh/vendor-completions/_multihome"
	GrafanaPath = "/usr/share/multihome/grafana/multihome.json"
)

var describe = regexp.MustCompile(`^v?(\d+(?:\.\d+)*)(?:-(\d+)-g([0-9a-f]+))?(-dirty)?$`)

// Version turns `git describe --always --dirty` output into a Debian
// version: v1.2.0 → 1.2.0, v1.2.0-5-gabc123 → 1.2.0+git5.abc123, and a
// bare commit abc123 (no tag yet) → 0.0.0~gitabc123; -dirty becomes
// +dirty / .dirty.
func Version(v string) string {
	if m := describe.FindStringSubmatch(v); m != nil {
		out := m[1]
		if m[2] != "" {
			out += "+git" + m[2] + "." + m[3]
		}
		if m[4] != "" {
			if m[2] == "" {
				out += "+dirty"
			} else {
				out += ".dirty"
			}
		}
		return out
	}
	v = strings.TrimSuffix(v, "-dirty") + map[bool]string{true: ".dirty", false: ""}[strings.HasSuffix(v, "-dirty")]
	clean := regexp.MustCompile(`[^A-Za-z0-9.+~]`).ReplaceAllString(v, ".")
	return "0.0.0~git" + clean
}

// FileName is the package's conventional name.
func FileName(s Spec) string {
	return fmt.Sprintf("multihome_%s_%s.deb", Version(s.Version), s.Arch)
}

// postinst reloads systemd so the unit is known; the service is not
// enabled: the config must describe the site's links first.
const postinst = `#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = configure ] && [ -z "$2" ]; then
	echo "multihome: edit /etc/multihome/multihome.yaml (or: multihome import mwan3|pfsense), then: systemctl enable --now multihome"
fi
`

// prerm stops the daemon on removal (a clean stop removes its routes,
// rules and nftables table), and restarts nothing on upgrade.
const prerm = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now multihome.service >/dev/null 2>&1 || true
fi
`

const postrm = `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rmdir /etc/multihome 2>/dev/null || true
fi
`

// Build writes the .deb for s to w. It stages the generated files (unit
// with the packaged binary's path, gzipped man page, maintainer scripts),
// lists every file of the package in one table and hands it to nfpm;
// splitting it would only scatter that table.
func Build(w io.Writer, s Spec) error {
	if s.Arch != "amd64" && s.Arch != "arm64" {
		return fmt.Errorf("deb: architecture %q: want amd64 or arm64", s.Arch)
	}
	tmp, err := os.MkdirTemp("", "multihome-deb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	unit, err := os.ReadFile(filepath.Join(s.Root, "dist/multihome.service"))
	if err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	// The unit in the repository runs /usr/local/bin/multihome (a manual
	// install); the package installs /usr/bin/multihome.
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/multihome"), []byte(BinPath))
	if err := os.WriteFile(filepath.Join(tmp, "multihome.service"), unit, 0o644); err != nil {
		return err
	}
	if err := gzipFile(filepath.Join(s.Root, "dist/multihome.8"), filepath.Join(tmp, "multihome.8.gz"), s.MTime); err != nil {
		return fmt.Errorf("deb: man page: %w", err)
	}
	file := func(src, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	contents := files.Contents{
		file(s.Binary, BinPath, 0o755),
		file(filepath.Join(tmp, "multihome.service"), UnitPath, 0o644),
		{Source: filepath.Join(s.Root, "dist/multihome.yaml"), Destination: ConfigPath, Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Mode: 0o600, Owner: "root", Group: "root"}},
		{Destination: "/etc/multihome", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700, Owner: "root", Group: "root"}},
		file(filepath.Join(tmp, "multihome.8.gz"), ManPath, 0o644),
		file(s.Bash, BashPath, 0o644),
		file(s.Zsh, ZshPath, 0o644),
		file(filepath.Join(s.Root, "dist/grafana/multihome.json"), GrafanaPath, 0o644),
		file(filepath.Join(s.Root, "README.md"), DocDir+"/README.md", 0o644),
	}
	for _, pat := range []string{"docs/*.md", "examples/*.yaml"} {
		ms, _ := filepath.Glob(filepath.Join(s.Root, pat))
		sort.Strings(ms)
		if len(ms) == 0 {
			return fmt.Errorf("deb: no %s under %s", pat, s.Root)
		}
		for _, m := range ms {
			dst := DocDir + "/" + filepath.Base(m)
			if strings.HasPrefix(pat, "examples") {
				dst = DocDir + "/examples/" + filepath.Base(m)
			}
			contents = append(contents, file(m, dst, 0o644))
		}
	}
	scripts := map[string]string{"postinst": postinst, "prerm": prerm, "postrm": postrm}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	info := &nfpm.Info{
		Name:          "multihome",
		Arch:          s.Arch,
		Platform:      "linux",
		Version:       Version(s.Version),
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "multihome maintainers <maintainers@users.noreply.github.com>",
		Description: "multihoming controller for Linux edge gateways\n" +
			"Uses every uplink at once: probes each link through itself, steers new\n" +
			"connections over the healthy links by policy (routing tables, nftables,\n" +
			"conntrack marks, SNAT) and moves only a failed link's flows; answers\n" +
			"DNS with healthy links' addresses; BGP and BFD; IPv6 prefixes.\n" +
			"Imports mwan3 and pfSense/OPNsense configs.",
		Homepage: "https://github.com/multihome/multihome",
		MTime:    s.MTime,
		Overridables: nfpm.Overridables{
			Depends:  []string{"nftables"},
			Suggests: []string{"graphviz", "keepalived", "conntrackd"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(tmp, "postinst"),
				PreRemove:   filepath.Join(tmp, "prerm"),
				PostRemove:  filepath.Join(tmp, "postrm"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	p, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if err := p.Package(info, w); err != nil {
		return fmt.Errorf("deb: %w", err)
	}
	return nil
}

// gzipFile compresses src to dst with a fixed header time (man pages are
// installed gzipped).
func gzipFile(src, dst string, mtime time.Time) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.ModTime = mtime
	zw.Name = filepath.Base(src)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
