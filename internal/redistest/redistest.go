// Package redistest runs real redis-server processes for tests: on a free
// loopback port, in the test's temporary directory, stopped when the test
// ends. Tests of failures kill, restart and disconnect them.
//
// A test that needs Redis skips when redis-server is not installed, and
// fails instead when the CI environment variable is set, so that CI cannot
// pass by skipping. The processes are internal/redisproc's, which the
// benchmark harness uses too.
package redistest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/roomcast/roomcast/internal/redisproc"
	"github.com/roomcast/roomcast/internal/testsupport/testenv"
)

// Option configures Start.
type Option func(*options)

type options struct {
	snapshot    bool
	aof         bool
	tls         bool
	authClients bool
}

// WithTLS makes the server speak TLS alone, with a certificate for
// 127.0.0.1 signed by a CA of the test's (Server.TLS). The default is
// plaintext.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithClientCerts is WithTLS with Redis's tls-auth-clients yes: every
// client must present a certificate signed by the test's CA.
func WithClientCerts() Option { return func(o *options) { o.tls, o.authClients = true, true } }

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
	TLS  *TLS   // with WithTLS or WithClientCerts; nil for plaintext

	opts options
	proc *redisproc.Process

	mu     sync.Mutex
	client rueidis.Client
}

// Start runs redis-server on a free loopback port in a temporary directory
// for the test's duration, and returns once it answers PING. It skips the
// test when redis-server is not installed (fails when CI is set). The
// server is stopped, and its client closed, in the test's cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	Require(t)
	s := &Server{Dir: t.TempDir()}
	for _, o := range opts {
		o(&s.opts)
	}
	popts := redisproc.Options{AOF: s.opts.aof}
	if s.opts.tls {
		s.TLS = newTLS(t, s.opts.authClients)
		popts.TLS = s.TLS.proc
	}
	proc, err := redisproc.Start(s.Dir, popts)
	if err != nil {
		t.Fatal(err)
	}
	s.proc, s.Addr = proc, proc.Addr
	t.Cleanup(s.stop)
	return s
}

// Require skips the test when redis-server is not installed, and fails it
// instead when the CI environment variable is set, so that CI cannot pass
// by skipping: for tests that start Redis by other means than Start, such
// as the benchmark harness's own launcher.
func Require(t testing.TB) {
	t.Helper()
	if _, err := redisproc.Find(); err != nil {
		testenv.SkipOrFail(t, "%v", err)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit. Nothing is saved. Calling it on a stopped server does nothing.
func (s *Server) Kill() {
	s.closeClient() // its connections die with the process: Do makes a new one
	s.proc.Kill()
}

func (s *Server) closeClient() {
	s.mu.Lock()
	client := s.client
	s.client = nil
	s.mu.Unlock()
	if client != nil {
		client.Close()
	}
}

// Restart kills the server if it runs and starts it again on the same port
// and directory: with WithSnapshot from the snapshot the test saved, if any;
// otherwise empty. It is a new process, with a new run_id.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if !s.opts.snapshot {
		if err := os.Remove(filepath.Join(s.Dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := s.proc.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// stop ends the server for the test's cleanup (SIGTERM, SIGKILL after two
// seconds) and closes the client of Do.
func (s *Server) stop() {
	s.closeClient()
	s.proc.Stop()
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
			TLSConfig: s.TLS.ClientConfig(),
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
	if err := s.proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
