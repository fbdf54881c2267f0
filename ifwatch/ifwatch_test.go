package ifwatch

import (
	"context"
	"errors"
	"fmt"
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

// tempNS makes a namespace removed when the test ends, and a netlink
// handle in it; it skips the test when not root.
func tempNS(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := netns.Unique(lab.TestPrefix, "ifwatch")
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(name) })
	h, err := netns.Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

// TestRun: in a throwaway namespace, Run says when it is subscribed,
// reports link and address changes, and subscribes again (telling the
// handler again) when the handler's re-read fails.
func TestRun(t *testing.T) {
	name, h := tempNS(t)
	ns, err := vnetns.GetFromPath(netns.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

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

// TestSourceAddrs: of an interface's addresses, only those that can
// source traffic are listed, in the kernel's order.
func TestSourceAddrs(t *testing.T) {
	name, h := tempNS(t)
	for _, args := range [][]string{
		{"link", "add", "a0", "type", "veth", "peer", "name", "a1"},
		{"link", "set", "a0", "up"},
		{"addr", "add", "192.0.2.1/24", "dev", "a0"},
		{"addr", "add", "192.0.2.2/24", "dev", "a0"},                                  // secondary
		{"addr", "add", "198.51.100.1/24", "dev", "a0", "preferred_lft", "0"},         // deprecated
		{"addr", "add", "203.0.113.1/24", "dev", "a0"},                                // primary of its own subnet
		{"addr", "add", "2001:db8::1/64", "dev", "a0", "nodad"},                       // usable
		{"addr", "add", "2001:db8::2/64", "dev", "a0", "nodad", "preferred_lft", "0"}, // deprecated
		{"addr", "add", "2001:db8:1::1/64", "dev", "a0"},                              // tentative: a1 is down, DAD never ends
		{"addr", "add", "fe80::99/64", "dev", "a0", "nodad"},                          // link-local
	} {
		if out, err := netns.Command(context.Background(), name, append([]string{"ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	lk, err := h.LinkByName("a0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		family int
		want   string
	}{{4, "[192.0.2.1 203.0.113.1]"}, {6, "[2001:db8::1]"}} {
		got, err := SourceAddrs(h, lk, c.family)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(got); s != c.want {
			t.Errorf("IPv%d: %s, want %s", c.family, s, c.want)
		}
	}
}
