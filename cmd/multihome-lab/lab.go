package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/multihome/multihome/lab"
)

const labUsage = `usage:
  multihome-lab demo [--quick] [--verbose] [--listen ADDR] [--multihome PATH]
                                                             build a lab, run multihome on it and break the ISPs one by one
  multihome-lab up [--name mh] [--isps 2] [--lan-hosts 1]   build a lab and keep it (and its servers) until Ctrl-C
  multihome-lab down [--name mh | --all]                     remove a lab, e.g. one left by a crash
  multihome-lab status [--name mh]                           namespaces, addresses, carrier, active faults
  multihome-lab fault [--name mh] ISP FAULT                  FAULT: carrier-down, blackhole, loss=PERCENT, rate=RATE
  multihome-lab restore [--name mh] ISP|all                  undo the faults of an ISP (or of all)`

// cmdLab runs one of the lab commands: args[0] is the command.
func cmdLab(args []string) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, labUsage) }
	name := fs.String("name", "mh", "lab name (letters and digits; namespaces are NAME-role)")
	isps := fs.Int("isps", 2, "number of ISPs (up)")
	hosts := fs.Int("lan-hosts", 1, "number of LAN hosts (up)")
	all := fs.Bool("all", false, "every lab (down)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "up":
		return labUp(lab.Spec{Name: *name, ISPs: *isps, LANHosts: *hosts})
	case "down":
		return labDown(*name, *all)
	case "status":
		l, err := lab.Load(*name)
		if err != nil {
			return err
		}
		st, err := l.Status()
		if err != nil {
			return err
		}
		fmt.Print(st.String())
		return nil
	case "fault":
		if fs.NArg() != 2 {
			return errors.New("usage: multihome-lab fault [--name mh] ISP FAULT")
		}
		f, err := lab.ParseFault(fs.Arg(1))
		if err != nil {
			return err
		}
		l, err := lab.Load(*name)
		if err != nil {
			return err
		}
		at, err := l.Fault(fs.Arg(0), f)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s at %s\n", fs.Arg(0), f, at.Format("15:04:05.000"))
		return nil
	case "restore":
		if fs.NArg() != 1 {
			return errors.New("usage: multihome-lab restore [--name mh] ISP|all")
		}
		l, err := lab.Load(*name)
		if err != nil {
			return err
		}
		if fs.Arg(0) == "all" {
			return l.RestoreAll()
		}
		return l.Restore(fs.Arg(0))
	}
	fmt.Fprintln(os.Stderr, labUsage)
	return fmt.Errorf("unknown command %q", args[0])
}

func labUp(spec lab.Spec) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := lab.Up(ctx, spec, log)
	if err != nil {
		return err
	}
	defer l.Down()
	st, err := l.Status()
	if err != nil {
		return err
	}
	fmt.Print(st.String())
	fmt.Printf("\nlab %q is up; run commands in it with: ip netns exec %s CMD\n", l.Name, l.NS("gw"))
	fmt.Printf("e.g. ip netns exec %s bin/multihome run --config examples/lab.yaml\n", l.NS("gw"))
	fmt.Println("Ctrl-C tears it down.")
	<-ctx.Done()
	fmt.Println("\ntearing down")
	return nil
}

func labDown(name string, all bool) error {
	names := []string{name}
	if all {
		var err error
		if names, err = lab.Labs(); err != nil {
			return err
		}
	}
	var errs []error
	for _, n := range names {
		removed, err := lab.Cleanup(n + "-")
		if err != nil {
			errs = append(errs, err)
		}
		frr, err := lab.CleanupFRR(n + "-") // FRR routers (the demo's) run detached
		if err != nil {
			errs = append(errs, err)
		}
		if len(frr) > 0 {
			fmt.Printf("stopped FRR %s\n", strings.Join(frr, " "))
		}
		if len(removed) > 0 {
			fmt.Printf("removed %s\n", strings.Join(removed, " "))
		}
	}
	return errors.Join(errs...)
}
