package mptcp

import (
	"os"
	"testing"

	"github.com/multihome/multihome/lab"
)

func TestMain(m *testing.M) { os.Exit(lab.RunTests(m)) }
