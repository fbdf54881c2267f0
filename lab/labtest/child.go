package labtest

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
)

// Child is the running test binary re-executed inside one of the lab's
// namespaces, so that everything it opens (sockets, netlink, GoBGP's
// listeners) lives there. The child's TestMain recognises it by env and
// talks to the parent over Stdin and Stdout; its stderr is kept as Log.
type Child struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser
	Stdout io.ReadCloser

	mu     sync.Mutex
	stderr bytes.Buffer
}

// StartChild starts the test binary (running no test) in the namespace of
// l's role with env added to its environment. When the test ends the child's
// stdin is closed and it must exit within 5 s; its log is printed if the
// test failed or ran verbose. name labels both.
func StartChild(t testing.TB, l *lab.Lab, role, name string, env ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{}
	c.Cmd = l.Run(context.Background(), role, exe, "-test.run=^$")
	c.Cmd.Env = append(os.Environ(), env...)
	c.Cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.stderr.Write(p)
	})
	if c.Stdout, err = c.Cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if c.Stdin, err = c.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stdin.Close()
		done := make(chan error, 1)
		go func() { done <- c.Cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s child: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			c.Cmd.Process.Kill()
			<-done
			t.Errorf("%s child did not stop when its stdin closed", name)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("%s log:\n%s", name, c.Log())
		}
	})
	return c
}

// Log returns what the child wrote to stderr so far.
func (c *Child) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
