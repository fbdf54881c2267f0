// Command multihome-deb builds a Debian package of multihome (package
// deb). `make package` runs it once per architecture:
//
//	multihome-deb -arch arm64 -version $(git describe --always --dirty) \
//	    -bin bin/linux-arm64/multihome -bash bin/multihome.bash -zsh bin/_multihome -o bin/
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/multihome/multihome/deb"
)

func main() {
	var s deb.Spec
	flag.StringVar(&s.Arch, "arch", "amd64", "amd64 or arm64")
	flag.StringVar(&s.Version, "version", "dev", "version (git describe output or a Debian version)")
	flag.StringVar(&s.Binary, "bin", "", "the multihome binary built for -arch")
	flag.StringVar(&s.Root, "root", ".", "the repository root")
	flag.StringVar(&s.Bash, "bash", "", "bash completion script")
	flag.StringVar(&s.Zsh, "zsh", "", "zsh completion script")
	out := flag.String("o", ".", "output directory")
	flag.Parse()
	s.MTime = time.Now().UTC().Truncate(time.Second)
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		if n, err := strconv.ParseInt(e, 10, 64); err == nil {
			s.MTime = time.Unix(n, 0).UTC()
		}
	}
	if s.Binary == "" || s.Bash == "" || s.Zsh == "" {
		fmt.Fprintln(os.Stderr, "multihome-deb: -bin, -bash and -zsh are required")
		os.Exit(2)
	}
	path := filepath.Join(*out, deb.FileName(s))
	f, err := os.Create(path)
	if err == nil {
		err = deb.Build(f, s)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(path)
		fmt.Fprintln(os.Stderr, "multihome-deb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
