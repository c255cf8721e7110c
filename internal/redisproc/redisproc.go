// Package redisproc runs a redis-server process on a free loopback port,
// in a directory of the caller's, with nothing persisted unless asked: the
// launcher behind internal/redistest (tests) and the benchmark harness
// (internal/bench), which both need a real Redis of their own.
package redisproc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bin is where Debian's redis-server package puts the server; PATH is
// searched when it is not there.
const Bin = "/usr/bin/redis-server"

// ReadyWithin bounds how long a server may take to answer PING at start.
const ReadyWithin = 5 * time.Second

// stopWithin is how long Stop waits after SIGTERM before SIGKILL.
const stopWithin = 2 * time.Second

// portTries is how many free ports Start tries, and how many times
// Relaunch tries its own, when another process takes the port between
// finding it and redis-server binding it.
const portTries = 10

// ErrNotInstalled is returned by Find and Start when there is no
// redis-server.
var ErrNotInstalled = errors.New("redis-server is not installed (looked for " + Bin + " and on PATH): apt-get install redis-server")

// Find returns the path of redis-server: Bin, or the first on PATH.
func Find() (string, error) {
	if _, err := os.Stat(Bin); err == nil {
		return Bin, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		return bin, nil
	}
	return "", ErrNotInstalled
}

// Options configure Start. The zero value is a server that keeps nothing:
// an empty --save and --appendonly no.
type Options struct {
	// AOF turns the append-only file on (--appendonly yes, fsync every
	// second), so that Relaunch replays it.
	AOF bool

	// TLS, when not nil, makes the server speak TLS alone on Addr
	// (--port 0 --tls-port). The default is plaintext.
	TLS *TLS
}

// TLS is a server's TLS set-up: its certificate and key, the CA that its
// clients' certificates must be signed by, and the client configuration
// Start checks that it answers with.
type TLS struct {
	CertFile, KeyFile, CAFile string
	// AuthClients requires every client to present a certificate signed
	// by CAFile (--tls-auth-clients yes); otherwise none is asked for.
	AuthClients bool
	// Client is what the readiness PING dials with: it must trust the
	// server's certificate and, with AuthClients, present one.
	Client *tls.Config
}

// args are redis-server's arguments to listen on port.
func (t *TLS) args(port string) []string {
	if t == nil {
		return []string{"--port", port}
	}
	auth := "no"
	if t.AuthClients {
		auth = "yes"
	}
	return []string{"--port", "0", "--tls-port", port, "--tls-cert-file", t.CertFile, "--tls-key-file", t.KeyFile,
		"--tls-ca-cert-file", t.CAFile, "--tls-auth-clients", auth}
}

// Process is one redis-server. Its methods are safe for concurrent use.
type Process struct {
	Addr string // 127.0.0.1:port, the same across Relaunch
	Dir  string // working directory: log, dump.rdb, AOF

	bin  string
	opts Options

	mu     sync.Mutex
	proc   *os.Process
	exited chan struct{} // closed when proc has been waited for
}

// Start runs redis-server on a free loopback port with dir as its working
// directory, and returns once it answers PING. Stop ends it.
func Start(dir string, opts Options) (*Process, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	p := &Process{Dir: dir, bin: bin, opts: opts}
	for range portTries {
		if p.Addr, err = freePort(); err != nil {
			return nil, err
		}
		if err = p.launch(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return p, nil
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

var errPortTaken = errors.New("redisproc: port taken")

// launch starts the process on p.Addr and waits until it answers PING.
func (p *Process) launch() error {
	_, port, _ := net.SplitHostPort(p.Addr)
	logFile := filepath.Join(p.Dir, "log")
	os.Remove(logFile)
	aof := "no"
	if p.opts.AOF {
		aof = "yes"
	}
	args := append(p.opts.TLS.args(port),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", aof,
		"--dir", p.Dir, "--dbfilename", "dump.rdb", "--daemonize", "no", "--logfile", logFile)
	cmd := exec.Command(p.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { // ends with the process, which Kill and Stop end
		cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.proc, p.exited = cmd.Process, exited
	p.mu.Unlock()
	deadline := time.NewTimer(ReadyWithin)
	defer deadline.Stop()
	retry := time.NewTicker(5 * time.Millisecond)
	defer retry.Stop()
	for {
		if p.ping() == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			if strings.Contains(string(log), "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("redisproc: redis-server exited at start; its log:\n%s", log)
		case <-deadline.C:
			p.Kill()
			return fmt.Errorf("redisproc: redis-server on %s did not answer PING within %v", p.Addr, ReadyWithin)
		case <-retry.C:
		}
	}
}

// Ping sends PING to addr on a new connection and expects +PONG, within a
// second.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return ping(c)
}

// ping is Ping over TLS when the server speaks it.
func (p *Process) ping() error {
	if p.opts.TLS == nil {
		return Ping(p.Addr)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", p.Addr, p.opts.TLS.Client)
	if err != nil {
		return err
	}
	return ping(c)
}

func ping(c net.Conn) error {
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
		return fmt.Errorf("redisproc: PING answered %q", buf[:n])
	}
	return nil
}

// Relaunch starts the server again on the same port and directory, after
// Kill or Stop (it kills the process first if it still runs). What it
// comes back with is the caller's doing: whatever dump.rdb (or AOF) Dir
// holds. It is a new process, with a new run_id.
func (p *Process) Relaunch() error {
	p.Kill()
	// The port was ours a moment ago; another process may have taken it
	// meanwhile, but rarely, and briefly: try a few times.
	var err error
	for range portTries {
		if err = p.launch(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	return err
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit. Nothing is saved. Calling it on a stopped server does nothing.
func (p *Process) Kill() {
	p.mu.Lock()
	proc, exited := p.proc, p.exited
	p.proc = nil
	p.mu.Unlock()
	if proc == nil {
		return
	}
	proc.Kill()
	<-exited
}

// Stop ends the server: SIGTERM (after SIGCONT, in case it was paused),
// then SIGKILL if it has not exited within two seconds. It waits for the
// process to exit. Calling it on a stopped server does nothing.
func (p *Process) Stop() {
	p.mu.Lock()
	proc, exited := p.proc, p.exited
	p.proc = nil
	p.mu.Unlock()
	if proc == nil {
		return
	}
	resume(proc)
	proc.Signal(syscall.SIGTERM)
	t := time.NewTimer(stopWithin)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		proc.Kill()
		<-exited
	}
}

// Signal sends sig to the running server, such as SIGSTOP to make it hang
// with its connections open and SIGCONT to resume it.
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		return errors.New("redisproc: the server is not running")
	}
	return proc.Signal(sig)
}
