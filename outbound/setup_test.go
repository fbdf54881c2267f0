package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	vnetlink "github.com/vishvananda/netlink"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/monitor"
	mhnetns "github.com/multihome/multihome/netns"
)

// benchNamespace makes a throwaway namespace with n veth uplinks
// wan1..wanN, each up with 198.51.100.(2i+1)/31 and its peer p1..pN up,
// and returns it with the config's links section for them: l1..lN with
// gateway 198.51.100.(2i) and the fields extra(i) adds (", key: value";
// extra may be nil). drop removes the namespace.
func benchNamespace(t *testing.T, n int, extra func(i int) string) (ns, links string, drop func()) {
	t.Helper()
	ns = mhnetns.Unique(lab.TestPrefix, "")
	if err := mhnetns.Add(ns); err != nil {
		t.Fatal(err)
	}
	drop = func() { mhnetns.Delete(ns) }
	h, err := mhnetns.Handle(ns)
	if err != nil {
		drop()
		t.Fatal(err)
	}
	defer h.Close()
	var b strings.Builder
	b.WriteString("links:\n")
	for i := range n {
		name, peer := fmt.Sprintf("wan%d", i+1), fmt.Sprintf("p%d", i+1)
		if err := h.LinkAdd(&vnetlink.Veth{LinkAttrs: vnetlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
			drop()
			t.Fatal(err)
		}
		lk, _ := h.LinkByName(name)
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i * 2)})
		addr, _ := vnetlink.ParseAddr(netip.PrefixFrom(a.Next(), 31).String())
		h.AddrAdd(lk, addr)
		h.LinkSetUp(lk)
		if p, err := h.LinkByName(peer); err == nil {
			h.LinkSetUp(p)
		}
		more := ""
		if extra != nil {
			more = extra(i)
		}
		fmt.Fprintf(&b, "  - {name: l%d, interface: %s, gateway4: %s%s}\n", i+1, name, a, more)
	}
	return ns, b.String(), drop
}

// appliedController returns a controller for cfg over namespace ns with
// every link up and its state applied once, and how long that apply
// took (Run is not called). The caller closes it (and cleans up).
func appliedController(t testing.TB, cfg *config.Config, ns string) (*Controller, time.Duration) {
	t.Helper()
	src := newFakeSource(cfg, monitor.Up)
	c, err := New(cfg, src, slog.New(slog.DiscardHandler), WithNetns(ns))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range src.Snapshot() {
		c.status[s.Link] = s
	}
	start := time.Now()
	if err := c.apply(context.Background(), "test"); err != nil {
		c.close()
		t.Fatal(err)
	}
	return c, time.Since(start)
}
