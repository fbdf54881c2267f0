package main

import (
	"fmt"
	"io"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/ha"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/outbound"
)

// dryRunOutput prints the kernel state the config produces with every link
// up: the nftables ruleset and the ip rules and routes, and with an ha
// section the keepalived and conntrackd configs.
func dryRunOutput(w io.Writer, cfg *config.Config) error {
	st := make([]monitor.Status, len(cfg.Links))
	for i, l := range cfg.Links {
		st[i] = monitor.Status{Link: l.Name, Interface: l.Interface, State: monitor.Up, Health: monitor.Up}
	}
	text, err := outbound.Render(cfg, st)
	if err != nil {
		return err
	}
	if _, err = fmt.Fprint(w, text); err != nil || cfg.HA == nil {
		return err
	}
	if sb := outbound.StandbyText(cfg); sb != "" {
		if _, err = fmt.Fprintf(w, "\n# on the standby (as the node starts, until keepalived reports master) the table also holds:\n%s", sb); err != nil {
			return err
		}
	}
	// The HA pair's daemons' configs, as they would be written to
	// ha.run_dir (the VRRPv2 password is not printed).
	pass := ""
	if cfg.HA.AuthPassFile != "" {
		pass = "<" + cfg.HA.AuthPassFile + ">"
	}
	_, err = fmt.Fprintf(w, "\n# %s/keepalived.conf\n%s\n# %s/conntrackd.conf\n%s",
		cfg.HA.RunDir, ha.RenderKeepalived(cfg, pass), cfg.HA.RunDir, ha.RenderConntrackd(cfg))
	return err
}
