package ha

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/multihome/multihome/config"
)

// Files of a node in its run directory.
const (
	keepalivedConf = "keepalived.conf"
	conntrackdConf = "conntrackd.conf"
	linksFile      = "links" // track file: the priority the uplinks add
	faultFile      = "fault" // track file: non-zero gives the role up
	notifyFIFO     = "notify.fifo"
	conntrackdSock = "conntrackd.ctl"
	conntrackdLock = "conntrackd.lock"
	keepalivedPID  = "keepalived.pid"
	vrrpPID        = "vrrp.pid"
)

// groupName is the keepalived sync group all instances belong to.
const groupName = "multihome"

// path returns the file name in the node's run directory.
func path(h *config.HA, name string) string { return filepath.Join(h.RunDir, name) }

// RenderKeepalived returns keepalived.conf for the node: one VRRP
// instance per configured instance, all in one sync group (they move
// together) that tracks the two files multihome writes (links: the
// priority the healthy uplinks add; fault: non-zero when this node must
// give the role up), and the notify FIFO multihome reads role changes
// from. Every instance starts as BACKUP, as nopreempt and preempt_delay
// require. It is long because it writes the file top to bottom, one
// keepalived block after another, which reads best next to the output.
func RenderKeepalived(cfg *config.Config, authPass string) string {
	h := cfg.HA
	var b strings.Builder
	w := func(indent int, format string, a ...any) {
		b.WriteString(strings.Repeat("    ", indent))
		fmt.Fprintf(&b, format, a...)
		b.WriteByte('\n')
	}
	w(0, "# keepalived.conf for node %s, rendered by multihome from %s; do not edit", h.Node, source(cfg))
	w(0, "global_defs {")
	w(1, "router_id %s", h.Node)
	w(1, "vrrp_version %d", h.Version)
	w(1, "vrrp_notify_fifo %s", path(h, notifyFIFO))
	w(1, "fifo_write_vrrp_states_on_reload")
	w(1, "vrrp_garp_master_repeat 3")
	w(1, "vrrp_garp_master_refresh 10")
	w(0, "}")
	w(0, "")
	w(0, "track_file mh_links {")
	w(1, "file %q", path(h, linksFile))
	w(1, "weight 1")
	w(0, "}")
	w(0, "track_file mh_fault {")
	w(1, "file %q", path(h, faultFile))
	w(1, "weight 0")
	w(0, "}")
	w(0, "")
	grouped := len(h.Instances) > 1
	if grouped {
		w(0, "vrrp_sync_group %s {", groupName)
		w(1, "group {")
		for _, in := range h.Instances {
			w(2, "%s", in.Name)
		}
		w(1, "}")
		w(1, "track_file {")
		w(2, "mh_links weight 1")
		w(2, "mh_fault weight 0")
		w(1, "}")
		w(1, "sync_group_tracking_weight")
		w(0, "}")
		w(0, "")
	}
	for i, in := range h.Instances {
		if i > 0 {
			w(0, "")
		}
		w(0, "vrrp_instance %s {", in.Name)
		w(1, "state BACKUP")
		w(1, "interface %s", in.Interface)
		w(1, "virtual_router_id %d", in.VRID)
		w(1, "priority %d", h.Priority)
		w(1, "advert_int %s", seconds(h.AdvertInterval.D()))
		if h.Preempt {
			if h.PreemptDelay > 0 {
				w(1, "preempt_delay %s", seconds(h.PreemptDelay.D()))
			}
		} else {
			w(1, "nopreempt")
		}
		if authPass != "" {
			w(1, "authentication {")
			w(2, "auth_type PASS")
			w(2, "auth_pass %s", authPass)
			w(1, "}")
		}
		if !grouped {
			w(1, "track_file {")
			w(2, "mh_links weight 1")
			w(2, "mh_fault weight 0")
			w(1, "}")
		}
		w(1, "virtual_ipaddress {")
		for _, a := range in.VirtualAddresses {
			w(2, "%s dev %s", a, in.Interface)
		}
		w(1, "}")
		w(0, "}")
	}
	return b.String()
}

// RenderConntrackd returns conntrackd.conf for the node: FTFW over UDP on
// the sync link, its socket and lock in the run directory, its log on
// stdout (into multihome's log), and the
// node's own addresses (loopback, the sync link's, each link's own)
// ignored, so only forwarded flows are synced.
func RenderConntrackd(cfg *config.Config) string {
	h := cfg.HA
	var b strings.Builder
	w := func(indent int, format string, a ...any) {
		b.WriteString(strings.Repeat("    ", indent))
		fmt.Fprintf(&b, format, a...)
		b.WriteByte('\n')
	}
	w(0, "# conntrackd.conf for node %s, rendered by multihome from %s; do not edit", h.Node, source(cfg))
	w(0, "Sync {")
	w(1, "Mode FTFW {")
	w(2, "StartupResync on")
	w(1, "}")
	w(1, "UDP {")
	w(2, "IPv4_address %s", h.Sync.Address.Addr())
	w(2, "IPv4_Destination_Address %s", h.Sync.Partner)
	w(2, "Port %d", h.Sync.Port)
	w(2, "Interface %s", h.Sync.Interface)
	w(2, "SndSocketBuffer 1249280")
	w(2, "RcvSocketBuffer 1249280")
	w(2, "Checksum on")
	w(1, "}")
	w(0, "}")
	w(0, "General {")
	w(1, "HashSize 32768")
	w(1, "HashLimit 131072")
	w(1, "LogFile off") // console mode logs to stdout: multihome's log
	w(1, "Syslog off")
	w(1, "LockFile %s", path(h, conntrackdLock))
	w(1, "UNIX {")
	w(2, "Path %s", path(h, conntrackdSock))
	w(1, "}")
	w(1, "NetlinkBufferSize 2097152")
	w(1, "NetlinkBufferSizeMaxGrowth 8388608")
	w(1, "NetlinkEventsReliable on")
	w(1, "Filter From Userspace {")
	w(2, "Protocol Accept {")
	w(3, "TCP")
	w(3, "UDP")
	w(3, "ICMP")
	w(2, "}")
	w(2, "Address Ignore {")
	w(3, "IPv4_address 127.0.0.1")
	w(3, "IPv6_address ::1")
	w(3, "IPv4_address %s", h.Sync.Address.Addr())
	w(3, "IPv4_address %s", h.Sync.Partner)
	for _, l := range cfg.Links {
		if l.Address4.IsValid() {
			w(3, "IPv4_address %s", l.Address4)
		}
	}
	w(2, "}")
	w(1, "}")
	w(0, "}")
	return b.String()
}

func source(cfg *config.Config) string {
	if cfg.File == "" {
		return "its config"
	}
	return cfg.File
}

// seconds writes d in seconds as keepalived reads it: "0.1", "1", "2.5".
func seconds(d time.Duration) string {
	s := fmt.Sprintf("%.3f", d.Seconds())
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
