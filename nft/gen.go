package nft

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/multihome/multihome/netns"
)

// GenFunc returns the nftables ruleset generation of a namespace: a
// number the kernel changes with every nftables transaction there (any
// table, anyone's). Set elements a rule adds from the packet path
// (`update @set`) do not change it.
type GenFunc func(ctx context.Context) (uint32, error)

// nftables netlink constants (linux/netfilter/nf_tables.h).
const (
	nfnlSubsysNFTables = 10
	nftMsgGetGen       = 16
	nftaGenID          = 1
)

// Generation returns a GenFunc for the named network namespace ("" is
// the process's own): one NFT_MSG_GETGEN request on a netlink socket
// opened there, much cheaper than any listing (which fetches every set
// element, `nft -t` included).
func Generation(ns string) GenFunc {
	return func(ctx context.Context) (uint32, error) {
		cfg := &netlink.Config{}
		if ns != "" {
			f, err := os.Open(netns.Path(ns))
			if err != nil {
				return 0, fmt.Errorf("nft generation: %w", err)
			}
			defer f.Close()
			cfg.NetNS = int(f.Fd())
		}
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
		if err != nil {
			return 0, fmt.Errorf("nft generation: %w", err)
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysNFTables<<8 | nftMsgGetGen), Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, 0, 0, 0}, // nfgenmsg
		})
		if err != nil {
			return 0, fmt.Errorf("nft generation: %w", err)
		}
		for _, m := range msgs {
			if len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return 0, fmt.Errorf("nft generation: %w", err)
			}
			ad.ByteOrder = binary.BigEndian
			for ad.Next() {
				if ad.Type() == nftaGenID {
					return ad.Uint32(), nil
				}
			}
		}
		return 0, fmt.Errorf("nft generation: no NFTA_GEN_ID in the answer")
	}
}
