// Package redistest runs real redis-server processes for tests: on a free
// loopback port, in the test's temporary directory, stopped when the test
// ends. Tests of failures kill, restart and disconnect them.
//
// A test that needs Redis skips when redis-server is not installed, and
// fails instead when the CI environment variable is set, so that CI cannot
// pass by skipping.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Bin is where Debian's redis-server package puts the server; PATH is
// searched when it is not there.
const Bin = "/usr/bin/redis-server"

// readyWithin bounds how long a server may take to answer PING.
const readyWithin = 5 * time.Second

// Option configures Start.
type Option func(*options)

type options struct {
	snapshot bool
	aof      bool
}

// WithSnapshot makes Restart keep the snapshot (dump.rdb) a test made with
// SAVE, so the server comes back with the data it held then. Redis never
// snapshots on its own here (an empty --save); without this option Restart
// deletes any snapshot, so a restart loses everything.
func WithSnapshot() Option { return func(o *options) { o.snapshot = true } }

// WithAOF turns the append-only file on (--appendonly yes, fsync every
// second): a restart then replays it. The default is off.
func WithAOF() Option { return func(o *options) { o.aof = true } }

// Server is a redis-server process of a test. Its methods are safe for
// concurrent use, but Kill and Restart are meant to be called from the
// test's goroutine.
type Server struct {
	Addr string // 127.0.0.1:port, the same across restarts
	Dir  string // working directory: log, dump.rdb, AOF

	opts options
	bin  string

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been waited for
	client rueidis.Client
}

// Start runs redis-server on a free loopback port in a temporary directory
// for the test's duration, and returns once it answers PING. It skips the
// test when redis-server is not installed (fails when CI is set). The
// server is stopped, and its client closed, in the test's cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := Bin
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("redis-server"); err != nil {
			skipOrFail(t, "redis-server is not installed (looked for %s and on PATH): apt-get install redis-server", Bin)
		}
	}
	s := &Server{Dir: t.TempDir(), bin: bin}
	for _, o := range opts {
		o(&s.opts)
	}
	t.Cleanup(s.stop)
	var err error
	for range 10 {
		s.Addr, err = freePort()
		if err != nil {
			t.Fatal(err)
		}
		if err = s.launch(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	t.Skip(msg)
}

// freePort returns a loopback address no one listens on at the moment.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var errPortTaken = errors.New("redistest: port taken")

// launch starts the process on s.Addr and waits until it answers PING.
func (s *Server) launch() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	logFile := filepath.Join(s.Dir, "log")
	os.Remove(logFile)
	aof := "no"
	if s.opts.aof {
		aof = "yes"
	}
	cmd := exec.Command(s.bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", aof,
		"--dir", s.Dir, "--dbfilename", "dump.rdb", "--daemonize", "no", "--logfile", logFile)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { // owned by the server: ends with the process, which stop ends
		cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()
	deadline := time.Now().Add(readyWithin)
	for {
		if ping(s.Addr) == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			if strings.Contains(string(log), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("redistest: redis-server exited at start; its log:\n%s", log)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("redistest: redis-server on %s did not answer PING within %v", s.Addr, readyWithin)
		}
	}
}

// ping sends PING on a new connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("redistest: PING answered %q", buf[:n])
	}
	return nil
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit. Nothing is saved. Calling it on a stopped server does nothing.
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	s.mu.Lock()
	proc, exited, client := s.proc, s.exited, s.client
	s.proc, s.client = nil, nil // its connections die with the process: Do makes a new one
	s.mu.Unlock()
	if client != nil {
		client.Close()
	}
	if proc == nil {
		return
	}
	proc.Signal(syscall.SIGKILL)
	<-exited
}

// Restart kills the server if it runs and starts it again on the same port
// and directory: with WithSnapshot from the snapshot the test saved, if any;
// otherwise empty. It is a new process, with a new run_id.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	if !s.opts.snapshot {
		if err := os.Remove(filepath.Join(s.Dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	// The port was ours a moment ago; another process may have taken it
	// meanwhile, but rarely, and briefly: try a few times.
	var err error
	for range 10 {
		if err = s.launch(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// stop ends the server for the test's cleanup: SIGTERM, SIGKILL after two
// seconds; and closes the client of Do.
func (s *Server) stop() {
	s.mu.Lock()
	proc, exited, client := s.proc, s.exited, s.client
	s.proc, s.client = nil, nil
	s.mu.Unlock()
	if client != nil {
		client.Close()
	}
	if proc == nil {
		return
	}
	proc.Signal(syscall.SIGCONT) // in case the test paused it
	proc.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		proc.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Do sends one command to the server, as args (such as "SAVE", or "CLIENT",
// "KILL", "TYPE", "pubsub"), on a client of the test's, and returns its
// result, or the error of connecting to it. After Kill or Restart it is a
// new client, on a new connection.
func (s *Server) Do(t testing.TB, args ...string) rueidis.RedisResult {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		return rueidis.NewErrorResult(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Do(ctx, c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}

// Client returns the server's client of Do, made at the first call; the
// server's cleanup closes it.
func (s *Server) Client() (rueidis.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress: []string{s.Addr}, ForceSingleClient: true, DisableCache: true, DisableRetry: true,
		})
		if err != nil {
			return nil, err
		}
		s.client = c
	}
	return s.client, nil
}

// KillPubSubClients disconnects every client in PUB/SUB mode (CLIENT KILL
// TYPE pubsub), as a network blip would, and returns how many there were.
func (s *Server) KillPubSubClients(t testing.TB) int {
	t.Helper()
	n, err := s.Do(t, "CLIENT", "KILL", "TYPE", "pubsub").AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// RunID returns the server process's run_id (INFO server).
func (s *Server) RunID(t testing.TB) string {
	t.Helper()
	info, err := s.Do(t, "INFO", "server").ToString()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	t.Fatalf("INFO server has no run_id:\n%s", info)
	return ""
}

// Pause stops the server's process (SIGSTOP) without closing its
// connections, as a hung server would: commands then wait for their
// timeouts. Resume continues it (SIGCONT).
func (s *Server) Pause(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (s *Server) Resume(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc == nil {
		t.Fatal("redistest: the server is not running")
	}
	if err := proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
