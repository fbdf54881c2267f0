// Command multihome-lab builds labs of network namespaces to try multihome
// on, and runs the demo in one: `multihome-lab demo`, `multihome-lab
// up|down|status|fault|restore`. It is a separate binary from
// cmd/multihome so that the daemon that runs on gateways links neither the
// lab nor the demo; the demo runs the multihome binary as its own process.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/multihome/multihome/demo"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Fprintln(os.Stderr, labUsage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	run := cmdLab
	if os.Args[1] == "demo" {
		run = cmdDemo
	}
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "multihome-lab %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func cmdDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var o demo.Options
	fs.BoolVar(&o.Quick, "quick", false, "a short run (blackhole and recovery of one ISP) that fails if multihome does not react: for tests")
	fs.BoolVar(&o.Verbose, "verbose", false, "also show the daemon's own log")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "serve the dashboard here, in this machine's namespace (loopback only); \"\" for none")
	fs.StringVar(&o.Multihome, "multihome", "", "the multihome binary to run (default: multihome next to this binary, else from $PATH)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.Multihome == "" {
		var err error
		if o.Multihome, err = findMultihome(); err != nil {
			return err
		}
	}
	return demo.Run(o)
}

// findMultihome returns the multihome binary next to this one (make
// builds both into bin/), or else the one on $PATH.
func findMultihome() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "multihome")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("multihome")
	if err != nil {
		return "", errors.New("no multihome binary next to multihome-lab or on $PATH: build it (make build) or pass --multihome PATH")
	}
	return filepath.Abs(p)
}
