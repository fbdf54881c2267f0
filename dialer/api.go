package dialer

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/config"
)

// LinksFromAPI returns the links a multihome daemon on this machine says
// accept new flows, in its order, each with the first global address of
// each family of its interface.
func LinksFromAPI(ctx context.Context, c *api.Client) ([]Link, error) {
	links, err := c.Links(ctx)
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, l := range links {
		if !l.AcceptsNew {
			continue
		}
		ifc, err := net.InterfaceByName(l.Interface)
		if err != nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		lk := Link{Name: l.Link}
		for _, ad := range addrs {
			p, err := netip.ParsePrefix(ad.String())
			if err != nil || !p.Addr().IsGlobalUnicast() {
				continue
			}
			a := p.Addr().Unmap()
			if a.Is4() && !lk.Addr4.IsValid() {
				lk.Addr4 = a
			}
			if a.Is6() && !lk.Addr6.IsValid() {
				lk.Addr6 = a
			}
		}
		if lk.Addr4.IsValid() || lk.Addr6.IsValid() {
			out = append(out, lk)
		}
	}
	return out, nil
}

// FromDaemon returns a dialer over the links of the multihome daemon
// whose API listens at addr ("" for the default socket,
// config.DefaultAPIListen). If no daemon answers within a second, the
// dialer has no links (the kernel picks the source) and err says why: the
// dialer works either way.
func FromDaemon(ctx context.Context, addr, token string) (*Dialer, error) {
	if addr == "" {
		addr = config.DefaultAPIListen
	}
	c, err := api.NewClient(addr, token)
	if err != nil {
		return &Dialer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	links, err := LinksFromAPI(ctx, c)
	if err != nil {
		return &Dialer{}, err
	}
	return &Dialer{Links: links}, nil
}
