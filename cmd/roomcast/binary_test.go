package main

import (
	"context"
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitWithin is how long a process may take to exit once asked to.
const exitWithin = 15 * time.Second

// process is the roomcast binary running as a child process.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed once Wait returned
}

func startProcess(t *testing.T, ctx context.Context, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.CommandContext(ctx, bin, args...), stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = exitWithin
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait() // the exit status is in ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits for the process to exit and returns its exit code: -1 if a
// signal killed it.
func (p *process) exitCode(t *testing.T) int {
	t.Helper()
	timer := time.NewTimer(exitWithin)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-timer.C:
		t.Fatalf("%q did not exit within %v; stderr:\n%s", p.cmd.Args, exitWithin, p.stderr)
		return 0
	}
}

func buildBinary(t *testing.T, ctx context.Context) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the binary with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "roomcast")
	if out, err := exec.CommandContext(ctx, gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestBinary(t *testing.T) {
	ctx := testCtx(t)
	bin := buildBinary(t, ctx)

	// The benchmark's NATS is in cmd/roomcast-bench alone.
	t.Run("no NATS", func(t *testing.T) {
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range info.Deps {
			if strings.HasPrefix(m.Path, "github.com/nats-io/") {
				t.Errorf("the binary links %s %s", m.Path, m.Version)
			}
		}
		if len(info.Deps) == 0 {
			t.Errorf("the binary lists no modules: %v", info)
		}
	})

	t.Run("serve publish subscribe", func(t *testing.T) {
		serve := startProcess(t, ctx, bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "")
		addr := serve.stderr.waitFor(t, ctx, grpcAddr)[1]

		quitter := startProcess(t, ctx, bin, "subscribe", "--server", addr, "chat.lobby")
		stayer := startProcess(t, ctx, bin, "subscribe", "--server", addr, "chat.lobby")
		quitter.stderr.waitFor(t, ctx, subscribed)
		stayer.stderr.waitFor(t, ctx, subscribed)

		out, err := exec.CommandContext(ctx, bin, "publish", "--server", addr, "chat.lobby", "hello world").Output()
		if err != nil || string(out) != "1\n" {
			t.Fatalf("publish: %q, %v; want \"1\\n\"", out, err)
		}
		line := regexp.MustCompile(`^chat\.lobby\t1\thello world\n$`)
		quitter.stdout.waitFor(t, ctx, line)
		stayer.stdout.waitFor(t, ctx, line)

		quitter.signal(t, syscall.SIGTERM)
		if code := quitter.exitCode(t); code != 0 {
			t.Errorf("subscribe after SIGTERM: exit %d, want 0; stderr:\n%s", code, quitter.stderr)
		}

		// Shutting the server down ends the other subscriber's stream; it
		// reconnects to a server restarted on the same address, and says
		// that the room's history was lost.
		serve.signal(t, syscall.SIGTERM)
		if code := serve.exitCode(t); code != 0 {
			t.Errorf("serve after SIGTERM: exit %d, want 0; stderr:\n%s", code, serve.stderr)
		}
		stayer.stderr.waitFor(t, ctx, regexp.MustCompile(`msg="disconnected; reconnecting" err="the server is unavailable: `))
		restarted := startProcess(t, ctx, bin, "serve", "--listen", addr, "--metrics-listen", "")
		restarted.stderr.waitFor(t, ctx, grpcAddr)
		stayer.stderr.waitFor(t, ctx, regexp.MustCompile(`msg=reconnected .*\n.*msg=rejoined room=chat\.lobby recovered=false`))
		if out, err := exec.CommandContext(ctx, bin, "publish", "--server", addr, "chat.lobby", "again").Output(); err != nil || string(out) != "1\n" {
			t.Fatalf("publish after the restart: %q, %v", out, err)
		}
		stayer.stdout.waitFor(t, ctx, regexp.MustCompile(`\nchat\.lobby\t1\tagain\n$`))
		stayer.signal(t, syscall.SIGTERM)
		if code := stayer.exitCode(t); code != 0 {
			t.Errorf("subscribe after SIGTERM: exit %d, want 0; stderr:\n%s", code, stayer.stderr)
		}
		restarted.signal(t, syscall.SIGTERM)
		if code := restarted.exitCode(t); code != 0 {
			t.Errorf("restarted serve after SIGTERM: exit %d, want 0; stderr:\n%s", code, restarted.stderr)
		}
		if strings.Contains(serve.stderr.String(), "serving metrics") {
			t.Errorf("--metrics-listen \"\" still served metrics:\n%s", serve.stderr)
		}
		if got := serve.stdout.String(); got != "" {
			t.Errorf("serve wrote %q on stdout", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		serve := startProcess(t, ctx, bin, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
		addr := serve.stderr.waitFor(t, ctx, grpcAddr)[1]
		maddr := serve.stderr.waitFor(t, ctx, metricsAddr)[1]
		if out, err := exec.CommandContext(ctx, bin, "publish", "--server", addr, "room", "x").Output(); err != nil {
			t.Fatalf("publish: %q, %v", out, err)
		}

		body := getMetrics(t, ctx, maddr)
		for _, want := range []string{"roomcast_messages_published_total 1", "go_goroutines", "process_cpu_seconds_total"} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}

		serve.signal(t, syscall.SIGINT)
		if code := serve.exitCode(t); code != 0 {
			t.Errorf("serve after SIGINT: exit %d, want 0; stderr:\n%s", code, serve.stderr)
		}
	})
}
