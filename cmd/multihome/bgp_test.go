package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
)

// TestCmdStatusBGP: multihome status shows a BGP block when the daemon
// has a bgp section: per neighbour its session state and for how long,
// the prefixes announced with their prepends (or withdrawn), received
// and imported counts and BFD; nothing when it has none.
func TestCmdStatusBGP(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...), apitest.Neighbors()...)
	_, addr := apitest.Start(t, f, api.Options{})
	var out bytes.Buffer
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Logf("\n%s", s)
	_, table, ok := strings.Cut(s, "\nBGP\n")
	if !ok {
		t.Fatalf("no BGP title after the links:\n%s", s)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 {
		t.Fatalf("BGP table has %d lines, want a header and 3 neighbours:\n%s", len(lines), table)
	}
	for i, want := range [][]string{
		{"NEIGHBOR", "LINK", "AS", "STATE", "FOR", "ANNOUNCED", "RECEIVED", "IMPORTED", "BFD", "REASON"},
		{"198.51.100.1", "fiber", "64501", "established", "3h00m", "192.0.2.0/25 192.0.2.128/25 ", "1 (full)", "up"},
		{"203.0.113.1", "cable", "64502", "established", "47m0s", "192.0.2.0/25 192.0.2.128/25 (+3 prepends)"},
		{"2001:db8:ff::1", "lte", "64503", "active", "6m0s", "withdrawn", "down", "hold timer expired"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("BGP line %d lacks %q: %q", i+1, w, lines[i])
			}
		}
	}
	// Columns line up: every neighbour's STATE starts where the header's does.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("STATE column not aligned at %d: %q", col, l)
		}
	}

	f.SetBGP(false)
	out.Reset()
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "BGP") {
		t.Errorf("BGP block without a bgp section:\n%s", out.String())
	}
}

// TestCmdEventsBGP: BGP announcement decisions and BFD downs recorded
// in the decision log show in multihome events with their reason (and
// neighbour), filtered by link.
func TestCmdEventsBGP(t *testing.T) {
	f := apitest.NewFake(apitest.Links()...)
	srv, addr := apitest.Start(t, f, api.Options{})
	n := netip.MustParseAddr("198.51.100.1").String()
	srv.Record(api.Entry{Time: time.Now(), Kind: "bgp", Link: "fiber", Neighbor: n, To: "announce", Reason: "bgp started: link fiber usable"})
	srv.Record(api.Entry{Time: time.Now(), Kind: "bgp", Link: "fiber", Neighbor: n, From: "announce", To: "withdraw",
		Reason: "link fiber not usable: 3 rounds with 0/3 targets answering (quorum 1)"})
	srv.Record(api.Entry{Time: time.Now(), Kind: "bgp", Link: "cable", Neighbor: "203.0.113.1", From: "prepend 3", To: "prepend 6",
		Reason: "link cable not usable: carrier lost"})
	// A BFD session shared by the link and the neighbour: one entry each.
	srv.Record(api.Entry{Time: time.Now(), Kind: "bfd", Link: "fiber", From: "up", To: "down",
		Reason: "BFD up→down: neighbor signaled session down (peer 198.51.100.1): up for 11ms, less than its 5s hold-up: not acted on, link fiber (up) left to its probes"})
	srv.Record(api.Entry{Time: time.Now(), Kind: "bfd", Link: "fiber", Neighbor: n, From: "up", To: "down",
		Reason: "BFD up→down: neighbor signaled session down (neighbour's diagnostic: none): up for 11ms, less than its 5s hold-up: not acted on: announcements and BGP session kept, link fiber (up) left to its probes"})
	var out bytes.Buffer
	if err := runEvents(context.Background(), &out, []string{"--api", addr, "--link", "fiber"}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	t.Logf("\n%s", got)
	for _, want := range []string{
		"fiber      bgp        announce           neighbor 198.51.100.1: bgp started: link fiber usable",
		"fiber      bgp        announce -> withdraw neighbor 198.51.100.1: link fiber not usable: 3 rounds with 0/3 targets answering (quorum 1)",
		"fiber      bfd        up -> down         BFD up→down: neighbor signaled session down (peer 198.51.100.1): up for 11ms",
		"fiber      bfd        up -> down         neighbor 198.51.100.1: BFD up→down: neighbor signaled session down (neighbour's diagnostic: none)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("events lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cable") {
		t.Errorf("--link fiber shows cable's decision:\n%s", got)
	}
}
