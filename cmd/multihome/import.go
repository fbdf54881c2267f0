package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/importer"
	"github.com/multihome/multihome/uci"
)

func init() {
	commands["import"] = command{"convert another tool's config: multihome import mwan3|pfsense [flags] FILE", cmdImport}
}

func cmdImport(args []string) error {
	return runImport(args, os.Stdout, os.Stderr)
}

// runImport converts, writes the YAML to stdout or -o, every note to
// stderr, and checks the result as check-config would.
func runImport(args []string, stdout, stderr io.Writer) error {
	const use = "usage: multihome import mwan3 [--network FILE] [-o FILE] FILE\n       multihome import pfsense [-o FILE] config.xml"
	if len(args) == 0 || (args[0] != "mwan3" && args[0] != "pfsense") {
		return errors.New(use)
	}
	kind := args[0]
	fs := flag.NewFlagSet("import "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the config to this file (mode 0600) instead of stdout")
	var network *string
	if kind == "mwan3" {
		network = fs.String("network", "", "OpenWrt's /etc/config/network, for device names, gateways and addresses")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(use)
	}
	res, err := convert(kind, fs.Arg(0), network)
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	name := "<stdout>"
	if *out != "" {
		name = *out
		if err := os.WriteFile(*out, res.YAML, 0o600); err != nil {
			return err
		}
	} else if _, err := stdout.Write(res.YAML); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "imported %s: %d note(s) to check\n", fs.Arg(0), len(res.Notes))
	if _, err := config.Parse(name, res.YAML); err != nil {
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("the imported config does not pass check-config yet: fix the fields above")
	}
	return nil
}

func convert(kind, path string, network *string) (*importer.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if kind == "pfsense" {
		return importer.PfSense(path, data)
	}
	f, err := uci.Parse(path, data)
	if err != nil {
		return nil, err
	}
	var nf *uci.File
	if *network != "" {
		b, err := os.ReadFile(*network)
		if err != nil {
			return nil, err
		}
		if nf, err = uci.Parse(*network, b); err != nil {
			return nil, err
		}
	}
	return importer.MWAN3(f, nf)
}
