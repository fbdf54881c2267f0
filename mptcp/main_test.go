package mptcp

import (
	"os"
	"testing"

	"github.com/multihome/multihome/lab/labtest"
)

func TestMain(m *testing.M) { os.Exit(labtest.RunTests(m)) }
