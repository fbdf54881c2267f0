package bfd

import (
	"bytes"
	"errors"
	"testing"
)

func TestPacketRoundTrip(t *testing.T) {
	p := Packet{Version: 1, Diag: DiagDetectExpired, State: Up, Poll: true, DetectMult: 3, MyDisc: 7, YourDisc: 9,
		DesiredMinTx: 300000, RequiredMinRx: 300000}
	b := p.Append(nil)
	want := []byte{0x21, 0xe0, 3, 24, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0x04, 0x93, 0xe0, 0, 0x04, 0x93, 0xe0, 0, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("wire % x\nwant % x", b, want)
	}
	q, err := Parse(b)
	if err != nil || q != p {
		t.Fatalf("parse: %+v %v", q, err)
	}
}

func TestParseRejects(t *testing.T) {
	ok := Packet{Version: 1, State: Down, DetectMult: 3, MyDisc: 1}
	for name, mod := range map[string]func(b []byte){
		"version 2":       func(b []byte) { b[0] = 2 << 5 },
		"mult 0":          func(b []byte) { b[2] = 0 },
		"multipoint":      func(b []byte) { b[1] |= 1 },
		"my disc 0":       func(b []byte) { b[7] = 0 },
		"length 23":       func(b []byte) { b[3] = 23 },
		"length 30":       func(b []byte) { b[3] = 30 },
		"auth":            func(b []byte) { b[1] |= 4 },
		"up, your disc 0": func(b []byte) { b[1] = byte(Up) << 6 },
		"poll and final":  func(b []byte) { b[1] |= 0x30 },
	} {
		b := ok.Append(nil)
		if _, err := Parse(b); err != nil {
			t.Fatal(err)
		}
		mod(b)
		if _, err := Parse(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	if _, err := Parse(make([]byte, 23)); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add((&Packet{Version: 1, State: Up, DetectMult: 3, MyDisc: 1, YourDisc: 2, DesiredMinTx: 300000, RequiredMinRx: 300000}).Append(nil))
	f.Add((&Packet{Version: 1, State: Down, DetectMult: 1, MyDisc: 5}).Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// A valid packet re-encodes to its first 24 bytes.
		if got := p.Append(nil); !bytes.Equal(got, b[:HeaderLen]) && b[3] == HeaderLen {
			t.Fatalf("re-encode % x != % x", got, b[:HeaderLen])
		}
		if q, err := Parse(p.Append(nil)); err != nil || q != p {
			t.Fatalf("round trip: %+v %v", q, err)
		}
	})
}
