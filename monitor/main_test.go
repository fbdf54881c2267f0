package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/lab"
	"github.com/multihome/multihome/lab/labtest"
)

// childEnv names the config file a re-executed test binary runs the
// monitor with (see runChild).
const childEnv = "MULTIHOME_MONITOR_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(labtest.RunTests(m))
}

// childMsg is one line the child writes on stdout.
type childMsg struct {
	Event    *Event   `json:"event,omitempty"`
	Snapshot []Status `json:"snapshot,omitempty"`
	Err      string   `json:"err,omitempty"`
}

// childCmd is one line the parent writes on the child's stdin.
type childCmd struct {
	Op     string `json:"op"` // "snapshot", "admin"
	Link   string `json:"link,omitempty"`
	Admin  Admin  `json:"admin,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// runChild runs the monitor in this process, which the parent started
// inside the lab's gateway namespace: the whole process, every thread,
// lives there. It prints every event as a JSON line on stdout, answers
// commands read from stdin, and stops when stdin closes.
func runChild(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(&cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	write := func(msg childMsg) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(msg)
	}
	events, cancelSub := m.Subscribe()
	defer cancelSub()
	go func() {
		for e := range events {
			write(childMsg{Event: &e})
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var c childCmd
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				write(childMsg{Err: err.Error()})
				continue
			}
			switch c.Op {
			case "snapshot":
				write(childMsg{Snapshot: m.Snapshot()})
			case "admin":
				if err := m.SetAdmin(c.Link, c.Admin, c.Reason); err != nil {
					write(childMsg{Err: err.Error()})
				}
			}
		}
		cancel()
	}()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a monitor running in a lab's gateway namespace.
type child struct {
	*labtest.Child
	t    testing.TB
	msgs chan childMsg
	seen []Event
}

// startChild re-executes the test binary in the gateway namespace of l,
// running the monitor with cfg. The child is stopped when the test ends;
// its log is printed if the test failed.
func startChild(t testing.TB, l *lab.Lab, cfg *config.Config) *child {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/config.json"
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, msgs: make(chan childMsg, 4096)}
	c.Child = labtest.StartChild(t, l, lab.RoleGW, "monitor", childEnv+"="+path)
	go func() {
		defer close(c.msgs)
		dec := json.NewDecoder(c.Stdout)
		for {
			var m childMsg
			if err := dec.Decode(&m); err != nil {
				return
			}
			c.msgs <- m
		}
	}()
	return c
}

// next returns the next event, or false after d.
func (c *child) next(d time.Duration) (Event, bool) {
	timeout := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatal("monitor child exited")
			}
			if m.Err != "" {
				c.t.Errorf("monitor child: %s", m.Err)
			}
			if m.Event != nil {
				c.seen = append(c.seen, *m.Event)
				return *m.Event, true
			}
		case <-timeout:
			return Event{}, false
		}
	}
}

// wait returns the first event matching match within d, failing the test
// otherwise.
func (c *child) wait(d time.Duration, what string, match func(Event) bool) Event {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		e, ok := c.next(time.Until(deadline))
		if !ok {
			c.t.Fatalf("no %s within %v; events: %s", what, d, c.history())
		}
		if match(e) {
			return e
		}
	}
}

// quiet returns the events seen during d.
func (c *child) quiet(d time.Duration) []Event {
	var out []Event
	deadline := time.Now().Add(d)
	for {
		e, ok := c.next(time.Until(deadline))
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func (c *child) snapshot() []Status {
	c.t.Helper()
	fmt.Fprintln(c.Stdin, `{"op":"snapshot"}`)
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatal("monitor child exited")
			}
			if m.Event != nil {
				c.seen = append(c.seen, *m.Event)
			}
			if m.Snapshot != nil {
				return m.Snapshot
			}
		case <-timeout:
			c.t.Fatal("no snapshot from the monitor child")
		}
	}
}

func (c *child) history() string {
	var b strings.Builder
	for _, e := range c.seen {
		fmt.Fprintf(&b, "\n  %s %s %s %s→%s: %s", e.Time.Format("15:04:05.000"), e.Link, e.Kind, e.From, e.To, e.Reason)
	}
	return b.String()
}
