package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is the test's deadline for anything it waits on.
func testCtx(t testing.TB) context.Context { return servertest.Context(t) }

// syncBuffer is an output that a test can wait on while a command writes it.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // 1-buffered: something was written
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output matches re and returns the submatches.
func (b *syncBuffer) waitFor(t testing.TB, ctx context.Context, re *regexp.Regexp) []string {
	t.Helper()
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case <-b.changed:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %q in output:\n%s", re, b.String())
		}
	}
}

var (
	grpcAddr    = regexp.MustCompile(`msg="serving gRPC" addr=(\S+)`)
	metricsAddr = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)
	subscribed  = regexp.MustCompile(`msg=subscribed session=(\S+)`)
)

// startServer runs a server on a loopback port for the test's duration.
func startServer(t testing.TB, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return servertest.Start(t, opts...)
}

// runCmd runs a command line to completion.
func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// flagNames returns the names of every flag of a command.
func flagNames(c *command) []string {
	fs := c.flagSet(io.Discard)
	c.setup(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

func TestHelpDescribesEveryCommandAndFlag(t *testing.T) {
	ctx := testCtx(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q; want 0 and nothing", args, code, stderr)
		}
		for _, c := range commands {
			if !strings.Contains(stdout, "Usage: roomcast "+c.name) {
				t.Errorf("%q does not describe %s", args, c.name)
			}
			for _, f := range flagNames(c) {
				if !strings.Contains(stdout, "--"+f) {
					t.Errorf("%q does not describe %s --%s", args, c.name, f)
				}
			}
		}
	}
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, stdout, stderr := runCmd(ctx, args...)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: roomcast "+c.name) {
				t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, stderr, stdout)
			}
			for _, f := range flagNames(c) {
				if !strings.Contains(stdout, "--"+f) {
					t.Errorf("%q does not describe --%s", args, f)
				}
			}
		}
	}
}

func TestFlagDefaults(t *testing.T) {
	t.Setenv("ROOMCAST_LISTEN", "127.0.0.1:7000")
	t.Setenv("ROOMCAST_METRICS_LISTEN", "")
	t.Setenv("ROOMCAST_SERVER", "")
	want := map[string]map[string]string{
		"serve": {
			"listen":                "127.0.0.1:7000", // from the environment
			"metrics-listen":        "",               // set, though empty: disabled
			"max-message-bytes":     "1048576",
			"backlog-messages":      "1024",
			"backlog-bytes":         "4194304",
			"max-rooms-per-session": "256",
			"drain-timeout":         "10s",
			"jwt-max-lifetime":      "24h0m0s",
			"auth-failure-log-rate": "10",
			"log-level":             "INFO",
		},
		"publish":   {"server": "127.0.0.1:50051"}, // empty means unset
		"subscribe": {"server": "127.0.0.1:50051"},
	}
	for name, flags := range want {
		c := lookup(name)
		fs := c.flagSet(io.Discard)
		c.setup(fs)
		for f, def := range flags {
			if got := fs.Lookup(f); got == nil || got.DefValue != def {
				t.Errorf("%s --%s: got %v, want default %q", name, f, got, def)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		args  []string
		usage string // the usage line stderr must show
		says  string // and what it must say
	}{
		{nil, "Usage:", "no command"},
		{[]string{"frobnicate"}, "Usage:", `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, "Usage:", `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, "Usage: roomcast serve", "no-such-flag"},
		{[]string{"serve", "extra"}, "Usage: roomcast serve", "wrong number of arguments"},
		{[]string{"serve", "--log-level", "loud"}, "Usage: roomcast serve", "log-level"},
		{[]string{"serve", "--backlog-messages", "many"}, "Usage: roomcast serve", "backlog-messages"},
		{[]string{"publish", "room"}, "Usage: roomcast publish", "wrong number of arguments"},
		{[]string{"publish", "room", "a", "b"}, "Usage: roomcast publish", "wrong number of arguments"},
		{[]string{"publish", "--header", "novalue", "room", "x"}, "Usage: roomcast publish", "KEY=VALUE"},
		{[]string{"subscribe"}, "Usage: roomcast subscribe", "wrong number of arguments"},
		{[]string{"bench", "--quick"}, "go run ./cmd/roomcast-bench", "command of its own"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.usage) || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q and %q on stderr", tc.args, code, stdout, stderr, tc.usage, tc.says)
		}
	}
}

func TestServeRefusesBadLimits(t *testing.T) {
	ctx := testCtx(t)
	// A limit that server.New refuses. (Not a message limit over the backlog,
	// for which New returns without closing the broker it made, whose janitor
	// goroutine goleak would report.)
	code, _, stderr := runCmd(ctx, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--max-rooms-per-session", "0")
	if code != 2 || !strings.Contains(stderr, "rooms per session") || !strings.Contains(stderr, "Usage: roomcast serve") {
		t.Errorf("exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}

// getMetrics returns what the metrics endpoint at addr serves, failing the
// test unless it answers 200.
func getMetrics(t testing.TB, ctx context.Context, addr string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alive, so that no connection outlives the test.
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", resp.Status, err)
	}
	return string(body)
}
