package outbound

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/bound"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
	"github.com/multihome/multihome/nft"
)

// TestHungNft: with nft hanging, every apply is stopped at nft.Timeout
// (counted in multihome_bound_timeouts_total{call="nft"}), a reload still
// gets its answer, the link events that pile up meanwhile stay bounded
// (multihome_bound_dropped_total{queue="monitor.events"}), and once nft
// works again the ruleset reflects the last state.
func TestHungNft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	oldTimeout, oldQueue := nft.Timeout, monitor.BusQueue
	nft.Timeout, monitor.BusQueue = 300*time.Millisecond, 64
	defer func() { nft.Timeout, monitor.BusQueue = oldTimeout, oldQueue }()

	dir := t.TempDir()
	hang := filepath.Join(dir, "hang")
	script := filepath.Join(dir, "nft")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ -e "+hang+" ] && exec sleep 600\nexec nft \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := labtest.Up(t, lab.Spec{ISPs: 2})
	e := &env{t: t, l: l, cfg: labConfig(t, l, "")}
	e.src = newFakeSource(e.cfg, monitor.Up)
	e.opts = []Option{WithNft(script)}
	e.start()
	listing := func() string {
		out, _ := l.Run(context.Background(), lab.RoleGW, "nft", "list", "table", "inet", "multihome").Output()
		return string(out)
	}
	if !strings.Contains(listing(), "numgen random mod 2") {
		t.Fatalf("with both links up the ruleset does not spread:\n%s", listing())
	}

	timeouts, drops := bound.TimeoutCount("nft"), bound.DroppedCount("monitor.events")
	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if i%2 == 0 {
			e.src.down("isp1")
		} else {
			e.src.up("isp1")
		}
	}
	e.src.down("isp1") // the last word
	began := time.Now()
	err := e.c.Update(e.cfg)
	t.Logf("a reload during the hang answered after %v: %v", time.Since(began).Round(time.Millisecond), err)
	if time.Since(began) > 15*time.Second {
		t.Errorf("a reload during the hang took %v", time.Since(began))
	}
	e.waitFor("nft timeouts counted", 10*time.Second, func() bool { return bound.TimeoutCount("nft") > timeouts })
	if d := bound.DroppedCount("monitor.events") - drops; d == 0 {
		t.Errorf("2001 events queued behind a hung nft with a queue of 64: none dropped")
	} else {
		t.Logf("%.0f events merged away while nft hung; %.0f nft timeouts", d, bound.TimeoutCount("nft")-timeouts)
	}

	os.Remove(hang)
	e.waitFor("the ruleset to show isp1 down after nft works again", 20*time.Second, func() bool {
		s := listing()
		return strings.Contains(s, "chain steer") && !strings.Contains(s, "numgen random mod 2")
	})
	if err := e.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
