package nft

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
)

// counterMsg encodes a counter object as the kernel answers
// NFT_MSG_GETOBJ (without the nfgenmsg header).
func counterMsg(t testing.TB, table, name string, packets uint64) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(nftaObjTable, table)
	ae.String(nftaObjName, name)
	ae.Uint32(nftaObjType, nftObjectCounter)
	ae.Nested(nftaObjData, func(nae *netlink.AttributeEncoder) error {
		nae.Uint64(1, packets*100) // bytes
		nae.Uint64(nftaCounterPackets, packets)
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseCounter: any answer parses without panicking, and a well
// formed one gives back its name, table and packets.
func FuzzParseCounter(f *testing.F) {
	f.Add(counterMsg(f, "multihome", "new/default/isp1", 42))
	f.Add([]byte{4, 0, 1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseCounter(b)
	})
}

func TestParseCounter(t *testing.T) {
	name, table, packets, err := parseCounter(counterMsg(t, "multihome", "new/default/isp1", 42))
	if err != nil || name != "new/default/isp1" || table != "multihome" || packets != 42 {
		t.Errorf("parseCounter = %q %q %d %v", name, table, packets, err)
	}
}
