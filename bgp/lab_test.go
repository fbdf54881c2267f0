package bgp

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
	"github.com/multihome/multihome/monitor"
)

// child is the speaker running in the lab's gateway namespace.
type child struct {
	*labtest.Child
	t      testing.TB
	events chan monitor.Event
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startSpeaker writes yaml to a file and runs the speaker child with it
// in l's gateway namespace.
func startSpeaker(t testing.TB, l *lab.Lab, yaml string, env ...string) *child {
	t.Helper()
	path := filepath.Join(t.TempDir(), "multihome.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, events: make(chan monitor.Event, 1024)}
	c.Child = labtest.StartChild(t, l, lab.RoleGW, "speaker", append(env, childEnv+"="+path)...)
	go func() {
		defer close(c.events)
		dec := json.NewDecoder(c.Stdout)
		for {
			var e monitor.Event
			if dec.Decode(&e) != nil {
				return
			}
			c.events <- e
		}
	}()
	return c
}

func (c *child) log() string { return c.Log() }

// wait returns the first monitor event matching match within d.
func (c *child) wait(d time.Duration, what string, match func(monitor.Event) bool) monitor.Event {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				c.t.Fatalf("speaker child exited waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-timeout:
			c.t.Fatalf("no %s within %v", what, d)
		}
	}
}

func isState(link string, to monitor.State) func(monitor.Event) bool {
	return func(e monitor.Event) bool {
		return e.Kind == monitor.StateChanged && e.Link == link && e.To == to
	}
}

// labYAML is a config for a 2-ISP lab: links wan1 and wan2 probing the
// lab's targets, and the bgp section given.
func labYAML(bgp string) string {
	var s strings.Builder
	s.WriteString("links:\n")
	for k, gw := range []string{"198.51.100.1", "198.51.100.17"} {
		fmt.Fprintf(&s, "  - name: wan%d\n    interface: wan%d\n    gateway4: %s\n    address4: 198.51.100.%d\n    probes: [{target: %s}, {target: %s}, {target: %s}]\n",
			k+1, k+1, gw, 2+16*k, lab.ProbeTarget1, lab.ProbeTarget2, lab.ProbeTarget3)
	}
	return s.String() + bgp
}

// pollUntil calls f every 10 ms until it returns true or d passes.
func pollUntil(d time.Duration, f func() bool) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return time.Now(), true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
