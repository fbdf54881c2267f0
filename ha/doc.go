// Package ha makes a gateway one node of an active/standby pair, on the
// engines network engineers already run: keepalived (VRRP) moves the
// virtual addresses to the node holding the role, and conntrackd (FTFW
// over a dedicated sync link) keeps the standby's copy of the connection
// table, ct marks included, so established flows survive a takeover.
//
// The package renders both daemons' configs from multihome's (Render*),
// runs them as supervised child processes (supervisor.go), writes the link
// monitor's verdicts into keepalived track files so the VRRP priority
// follows the uplinks' health, and reads keepalived's notify FIFO: on
// becoming master it commits conntrackd's external cache into the kernel,
// on becoming backup it hands the kernel's flows over to the sync. One
// goroutine (Node.Run) owns the role and the files. docs/ha.md.
package ha
