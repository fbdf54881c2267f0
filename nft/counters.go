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

// CountersFunc returns the packet counts of a table's named counters, by
// name (empty when the table or its counters do not exist).
type CountersFunc func(ctx context.Context) (map[string]uint64, error)

// nftables object constants (linux/netfilter/nf_tables.h).
const (
	nftMsgGetObj       = 19
	nftaObjTable       = 1
	nftaObjName        = 2
	nftaObjType        = 3
	nftaObjData        = 4
	nftObjectCounter   = 1
	nftaCounterPackets = 2
)

// Counters returns a CountersFunc for table family/name in the named
// network namespace ("" is the process's own). Each call is one
// NFT_MSG_GETOBJ dump of the table's counter objects on a netlink socket
// opened there: unlike any nft listing (`nft list counters` included,
// which fetches every set element first), its cost grows with the number
// of counters only.
func Counters(ns, family, table string) CountersFunc {
	fam := map[string]byte{"inet": unix.NFPROTO_INET, "ip": unix.NFPROTO_IPV4, "ip6": unix.NFPROTO_IPV6}[family]
	return func(ctx context.Context) (map[string]uint64, error) {
		cfg := &netlink.Config{}
		if ns != "" {
			f, err := os.Open(netns.Path(ns))
			if err != nil {
				return nil, fmt.Errorf("nft counters: %w", err)
			}
			defer f.Close()
			cfg.NetNS = int(f.Fd())
		}
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
		if err != nil {
			return nil, fmt.Errorf("nft counters: %w", err)
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		ae := netlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.String(nftaObjTable, table)
		ae.Uint32(nftaObjType, nftObjectCounter)
		attrs, err := ae.Encode()
		if err != nil {
			return nil, fmt.Errorf("nft counters: %w", err)
		}
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysNFTables<<8 | nftMsgGetObj), Flags: netlink.Request | netlink.Dump},
			Data:   append([]byte{fam, 0, 0, 0}, attrs...), // nfgenmsg, then the filter
		})
		if err != nil {
			return nil, fmt.Errorf("nft counters: %w", err)
		}
		out := map[string]uint64{}
		for _, m := range msgs {
			if len(m.Data) < 4 {
				continue
			}
			name, tbl, packets, err := parseCounter(m.Data[4:])
			if err != nil {
				return nil, fmt.Errorf("nft counters: %w", err)
			}
			if tbl == table && name != "" {
				out[name] = packets
			}
		}
		return out, nil
	}
}

// parseCounter reads one NFT_MSG_NEWOBJ answer of a counter object.
func parseCounter(b []byte) (name, table string, packets uint64, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", "", 0, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case nftaObjTable:
			table = ad.String()
		case nftaObjName:
			name = ad.String()
		case nftaObjData:
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					if nd.Type() == nftaCounterPackets {
						packets = nd.Uint64()
					}
				}
				return nil
			})
		}
	}
	return name, table, packets, ad.Err()
}
