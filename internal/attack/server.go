package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// env is what every attack shares: the binary and the keys.
type env struct {
	dir       string // temporary: the binary if built, the key file
	roomcast  string
	keys      string // the API key file
	bystander string // the bystander's key
	attacker  string // the attacker's key
}

// prepare builds roomcast unless bin names one, and makes the keys.
func prepare(ctx context.Context, bin string, logf func(string, ...any)) (*env, error) {
	dir, err := os.MkdirTemp("", "roomcast-attack-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, roomcast: bin, keys: filepath.Join(dir, "keys.jsonl")}
	if e.roomcast == "" {
		e.roomcast = filepath.Join(dir, "roomcast")
		logf("building cmd/roomcast")
		build := exec.CommandContext(ctx, "go", "build", "-o", e.roomcast, "github.com/roomcast/roomcast/cmd/roomcast")
		if out, err := build.CombinedOutput(); err != nil {
			e.close()
			return nil, fmt.Errorf("go build (run this from the roomcast repository, or give --roomcast): %v\n%s", err, out)
		}
	}
	for _, k := range []struct {
		subject string
		key     *string
	}{{"bystander", &e.bystander}, {"attacker", &e.attacker}} {
		out, err := exec.CommandContext(ctx, e.roomcast, "apikey", "new", "--subject", k.subject,
			"--publish", ">", "--subscribe", ">", "--presence", ">", "--file", e.keys).Output()
		if err != nil {
			e.close()
			return nil, fmt.Errorf("roomcast apikey new: %w", err)
		}
		*k.key = strings.TrimSpace(string(out))
	}
	return e, nil
}

func (e *env) close() { os.RemoveAll(e.dir) }

// serveProc is one "roomcast serve" process.
type serveProc struct {
	cmd     *exec.Cmd
	addr    string
	metrics string        // the metrics address
	web     string        // the web listener's address; "" when it is off
	exited  chan struct{} // closed once the process has exited
	err     error         // how it exited; set before exited is closed
	mu      sync.Mutex
	log     bytes.Buffer // its last lines of log
}

var (
	servingAddr = regexp.MustCompile(`msg="serving gRPC" addr=(\S+)`)
	metricsAddr = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)
	webAddr     = regexp.MustCompile(`msg="serving web clients" addr=(\S+)`)
)

// startServe starts serve with its default flags, on free ports of
// 127.0.0.1, with the key file and extra, and returns once it serves.
// Its web listener is off unless web. It runs where pin puts the server.
func (e *env) startServe(ctx context.Context, pin pinning, extra []string, web bool) (*serveProc, error) {
	httpListen := ""
	if web {
		httpListen = "127.0.0.1:0"
	}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--http-listen", httpListen, "--api-keys-file", e.keys}, extra...)
	name, args := pin.serverCommand(e.roomcast, args)
	cmd := exec.Command(name, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serveProc{cmd: cmd, exited: make(chan struct{})}
	addr, maddr, waddr := make(chan string, 1), make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := servingAddr.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
			if m := metricsAddr.FindStringSubmatch(line); m != nil {
				maddr <- m[1]
			}
			if m := webAddr.FindStringSubmatch(line); m != nil {
				waddr <- m[1]
			}
			p.mu.Lock()
			if p.log.Len() > 64<<10 { // keep the tail
				tail := bytes.Clone(p.log.Bytes()[p.log.Len()-32<<10:])
				p.log.Reset()
				p.log.Write(tail)
			}
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	timeout := time.After(30 * time.Second)
	for p.addr == "" || p.metrics == "" || web && p.web == "" {
		select {
		case p.addr = <-addr:
			continue
		case p.metrics = <-maddr:
			continue
		case p.web = <-waddr:
			continue
		case <-p.exited:
			return nil, fmt.Errorf("serve exited before serving (%v):\n%s", p.err, p.logTail())
		case <-timeout:
		case <-ctx.Done():
		}
		p.kill()
		return nil, fmt.Errorf("serve did not start:\n%s", p.logTail())
	}
	return p, nil
}

// attackAddr is where the attacker calls: the web listener if it is on,
// else the gRPC port.
func (p *serveProc) attackAddr() string { return cmp.Or(p.web, p.addr) }

// scrape returns the server's metrics, each summed over its labels.
func (p *serveProc) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // nothing left behind
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			continue
		}
		name, _, _ := strings.Cut(line[:i], "{")
		m[name] += v
	}
	return m, sc.Err()
}

func (p *serveProc) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(p.log.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

// alive reports whether the process is still running.
func (p *serveProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, and kills the process if it has not exited 15
// seconds later (its drain timeout is 10).
func (p *serveProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *serveProc) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// cpu is the CPU time, user and system, the process has used so far, from
// /proc/PID/stat.
func (p *serveProc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux Go supports
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// readBytes is the bytes the process has read so far through read system
// calls, its sockets' included (rchar of /proc/PID/io).
func (p *serveProc) readBytes() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no rchar in /proc/PID/io")
}

// peakRSS is the process's peak resident set size so far (VmHWM), in bytes.
func (p *serveProc) peakRSS() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/PID/status")
}
