// Package childproc runs a part of a benchmark (a server, a subscriber) in
// a process of its own: the test binary started again, told by an
// environment variable which part to play, so that what that process spends
// (CPU time, allocations) is that part's alone and can be reported apart
// from the benchmark's own.
package childproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// stopWait is how long Wait lets a child take to exit before killing it.
const stopWait = 10 * time.Second

// A Role is a part the test binary plays when started again with Env set.
// The zero Role is not usable; a Role is a value, safe to share.
type Role struct {
	Name string // what the process is, in messages: "server process"
	Env  string // the environment variable that selects the role
}

// RunIfSelected, called from a test package's init, plays the role if its
// variable is set (to anything but ""), before any test or TestMain runs:
// it calls run with the variable's value and exits the process, with
// status 0 if run returns nil, else 1 after printing the error. run runs on
// a goroutine of its own: package initialization runs on the main
// goroutine, locked to the main thread, where every wake-up of a goroutine
// blocked there would cost a switch of threads that no program pays. When
// the variable is not set, RunIfSelected returns at once.
func (r Role) RunIfSelected(run func(value string) error) {
	value := os.Getenv(r.Env)
	if value == "" {
		return
	}
	errc := make(chan error, 1)
	go func() { errc <- run(value) }()
	if err := <-errc; err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", r.Name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Child is the test binary running in a role. Its methods are for the
// goroutine that started it; Wait alone may also be called from others.
type Child struct {
	role Role
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader

	waitOnce sync.Once
	waitErr  error
}

// Start starts the test binary again in role r, its variable set to value
// (which must not be ""), running no tests. The child's standard error is
// this process's; its standard input and output are pipes, for WriteLine
// and ReadLine. When tb ends a child not yet waited for is stopped as Wait
// stops it, an unclean exit an error of tb; if tb has failed by then, the
// child is killed at once instead, as what it was doing is moot.
func (r Role) Start(tb testing.TB, value string) *Child {
	tb.Helper()
	if value == "" {
		tb.Fatalf("%s: an empty value does not select the role", r.Name)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), r.Env+"="+value)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("%s: %v", r.Name, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("%s: %v", r.Name, err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", r.Name, err)
	}
	c := &Child{role: r, cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(func() {
		if tb.Failed() {
			c.waitOnce.Do(c.kill)
			return
		}
		stopped := false
		c.waitOnce.Do(func() { stopped = true; c.stop() })
		if stopped && c.waitErr != nil {
			tb.Errorf("%s: %v", r.Name, c.waitErr)
		}
	})
	return c
}

// ReadLine reads the child's next line of output, without its newline.
func (c *Child) ReadLine() (string, error) {
	line, err := c.out.ReadString('\n')
	if err != nil {
		return line, fmt.Errorf("%s: reading its output: %w", c.role.Name, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// WriteLine writes s and a newline to the child's standard input.
func (c *Child) WriteLine(s string) error {
	if _, err := io.WriteString(c.in, s+"\n"); err != nil {
		return fmt.Errorf("%s: writing to it: %w", c.role.Name, err)
	}
	return nil
}

// Wait closes the child's standard input, the cue to stop for a child that
// reads it, and waits for the child to exit, killing it if it has not
// within 10 seconds. It returns why the exit was not clean, the same on
// every call.
func (c *Child) Wait() error {
	c.waitOnce.Do(c.stop)
	return c.waitErr
}

// stop is Wait's work, done once.
func (c *Child) stop() {
	c.in.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case c.waitErr = <-done:
	case <-time.After(stopWait):
		c.cmd.Process.Kill()
		<-done
		c.waitErr = errors.New("did not stop; killed")
	}
}

// kill ends the child now, in Wait's stead.
func (c *Child) kill() {
	c.in.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.waitErr = errors.New("killed")
}
