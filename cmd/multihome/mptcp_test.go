package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/multihome/multihome/api"
	"github.com/multihome/multihome/api/apitest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden")

// multihome status prints the MPTCP block after the links when the
// daemon has an mptcp section (testdata/status-mptcp.golden), and
// nothing more when it has none.
func TestCmdStatusMPTCP(t *testing.T) {
	f := apitest.WithStatus(apitest.NewFake(apitest.Links()...))
	f.SetBGP(false)
	_, addr := apitest.Start(t, f, api.Options{})
	var out bytes.Buffer
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "MPTCP") {
		t.Errorf("MPTCP block without an mptcp section:\n%s", out.String())
	}

	st := apitest.MPTCP()
	st.Error = "endpoint add 198.51.100.18 id 104: no room"
	f.SetMPTCP(true, st)
	out.Reset()
	if err := runStatus(context.Background(), &out, []string{"--api", addr}); err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(out.String(), "\nMPTCP ")
	if !ok {
		t.Fatalf("no MPTCP block after the links:\n%s", out.String())
	}
	got := "MPTCP " + block
	path := filepath.Join("testdata", "status-mptcp.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("multihome status, MPTCP block:\n%s\nwant (%s, -update rewrites it):\n%s", got, path, want)
	}
}
