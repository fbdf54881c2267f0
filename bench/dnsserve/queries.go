package main

import (
	"encoding/binary"
	"fmt"
	"os"

	mdns "github.com/miekg/dns"
)

// mixedQueries writes the mixed workload of bench/dns.sh to path, in
// dnsperf's binary input format (-B: each message preceded by its
// length): steered and static names; A, AAAA, MX; NXDOMAIN and NODATA;
// every other query with EDNS (1232 bytes); some names in mixed case
// (0x20). Per 20 queries: 9 for steered names, 7 for static records, 2
// NXDOMAIN, 2 NODATA.
func mixedQueries(path string, n int) error {
	type q struct {
		name  string
		qtype uint16
	}
	mix := []q{
		{"www.example.com.", mdns.TypeA}, {"www.example.com.", mdns.TypeA}, {"www.example.com.", mdns.TypeA},
		{"WwW.ExAmPlE.cOm.", mdns.TypeA}, {"www.example.com.", mdns.TypeAAAA}, {"www.example.com.", mdns.TypeAAAA},
		{"api.example.com.", mdns.TypeA}, {"api.example.com.", mdns.TypeA}, {"API.example.com.", mdns.TypeA},
		{"mail.example.com.", mdns.TypeA}, {"mail.example.com.", mdns.TypeA}, {"MAIL.EXAMPLE.COM.", mdns.TypeAAAA},
		{"static.example.com.", mdns.TypeA}, {"static.example.com.", mdns.TypeA},
		{"example.com.", mdns.TypeMX}, {"example.com.", mdns.TypeMX},
		{"", mdns.TypeA}, {"", mdns.TypeA}, // NXDOMAIN: nope-N
		{"www.example.com.", mdns.TypeMX}, {"mail.example.com.", mdns.TypeTXT}, // NODATA
	}
	var out []byte
	nx := 0
	for i := range n {
		c := mix[i%len(mix)]
		if c.name == "" {
			c.name = fmt.Sprintf("nope-%d.example.com.", nx%100)
			nx++
		}
		m := new(mdns.Msg).SetQuestion(c.name, c.qtype)
		m.RecursionDesired = false
		if i%2 == 1 {
			m.SetEdns0(1232, false)
		}
		b, err := m.Pack()
		if err != nil {
			return err
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return os.WriteFile(path, out, 0o644)
}
