package ha

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child runs one program (keepalived or conntrackd) for as long as its
// context lives: its stdout and stderr go line by line into the log, it is
// restarted with exponential back-off when it exits, and it is stopped
// with SIGTERM (SIGKILL after stopGrace) when the context ends.
type child struct {
	name string
	argv []string
	log  *slog.Logger
	// prepare runs before every start (e.g. a stale lock file removed).
	prepare func() error
	// onStart runs after every successful start.
	onStart func()

	mu       sync.Mutex
	running  bool
	pid      int
	restarts int
	lastErr  string
	since    time.Time
}

// Back-off between restarts: doubling from minBackoff to maxBackoff, back
// to minBackoff after a run longer than stableRun.
var (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 10 * time.Second
	stableRun  = 30 * time.Second
	stopGrace  = 3 * time.Second
)

// ChildStatus is a supervised program's state, for the API.
type ChildStatus struct {
	Name     string    `json:"name"`
	Running  bool      `json:"running"`
	PID      int       `json:"pid,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since,omitzero"`
	LastExit string    `json:"last_exit,omitempty"`
}

func (c *child) status() ChildStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ChildStatus{Name: c.name, Running: c.running, PID: c.pid, Restarts: c.restarts, Since: c.since, LastExit: c.lastErr}
}

// run supervises the program until ctx ends.
func (c *child) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := c.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > stableRun {
			backoff = minBackoff
		}
		c.mu.Lock()
		c.restarts++
		c.lastErr = fmt.Sprint(err)
		c.mu.Unlock()
		c.log.Error("child exited: restarting", "program", c.name, "err", err, "ran", time.Since(start).Round(time.Millisecond), "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// once starts the program and waits for it to exit or for ctx to end.
func (c *child) once(ctx context.Context) error {
	if c.prepare != nil {
		if err := c.prepare(); err != nil {
			return err
		}
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	// A child outlives nothing of multihome's: if multihome dies, the
	// kernel sends it SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var logged sync.WaitGroup
	logged.Add(1)
	go func() {
		defer logged.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			c.log.Info(sc.Text(), "program", c.name)
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		logged.Wait()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	c.mu.Lock()
	c.running, c.pid, c.since = true, cmd.Process.Pid, time.Now()
	c.mu.Unlock()
	c.log.Info("child started", "program", c.name, "pid", cmd.Process.Pid, "argv", c.argv)
	if c.onStart != nil {
		c.onStart()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Signal the process group: keepalived's VRRP child goes too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(stopGrace):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
		c.log.Info("child stopped", "program", c.name)
	}
	pw.Close()
	logged.Wait()
	c.mu.Lock()
	c.running, c.pid = false, 0
	c.mu.Unlock()
	if err == nil {
		err = errors.New("exited")
	}
	return err
}
