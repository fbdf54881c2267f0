package ifwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/netns"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }

// TestRun: in a throwaway namespace, Run says when it is subscribed,
// reports link and address changes, and subscribes again (telling the
// handler again) when the handler's re-read fails.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique(lab.TestPrefix, "ifwatch")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	ns, err := vnetns.GetFromPath(netns.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netns.Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	var mu sync.Mutex
	subscribed, links := 0, map[string]bool{}
	addrs := map[string]bool{}
	got := make(chan struct{}, 64)
	note := func() {
		select {
		case got <- struct{}{}:
		default:
		}
	}
	handler := Handler{
		Subscribed: func() error {
			mu.Lock()
			defer mu.Unlock()
			subscribed++
			note()
			if subscribed == 1 {
				return errors.New("re-read failed")
			}
			return nil
		},
		Link: func(u netlink.LinkUpdate) {
			mu.Lock()
			links[u.Attrs().Name] = true
			mu.Unlock()
			note()
		},
		Addr: func(u netlink.AddrUpdate) {
			mu.Lock()
			addrs[u.LinkAddress.String()] = true
			mu.Unlock()
			note()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, &ns, slog.New(slog.NewTextHandler(io.Discard, nil)), handler, ready)
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("not ready after 5 s")
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			mu.Lock()
			done := ok()
			mu.Unlock()
			if done {
				return
			}
			select {
			case <-got:
			case <-deadline:
				t.Fatalf("no %s within 5 s", what)
			}
		}
	}
	waitFor("second subscription after the failed re-read", func() bool { return subscribed >= 2 })

	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth1"}, PeerName: "veth1p"}); err != nil {
		t.Fatal(err)
	}
	lk, err := h.LinkByName("veth1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(lk, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	waitFor("link update for veth1", func() bool { return links["veth1"] })
	waitFor("address update for 192.0.2.1/24", func() bool { return addrs["192.0.2.1/24"] })
	mu.Lock()
	defer mu.Unlock()
	if subscribed != 2 {
		t.Errorf("subscribed %d times, want 2", subscribed)
	}
}
