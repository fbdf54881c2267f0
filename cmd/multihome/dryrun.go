package main

import (
	"fmt"
	"io"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/outbound"
)

// dryRunOutput prints the kernel state the config produces with every link
// up: the nftables ruleset and the ip rules and routes.
func dryRunOutput(w io.Writer, cfg *config.Config) error {
	st := make([]monitor.Status, len(cfg.Links))
	for i, l := range cfg.Links {
		st[i] = monitor.Status{Link: l.Name, Interface: l.Interface, State: monitor.Up, Health: monitor.Up}
	}
	text, err := outbound.Render(cfg, st)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(w, text)
	return err
}
