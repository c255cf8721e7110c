package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestMain(m *testing.M) {
	// Tests of serve pick free ports; on the web listener's default port
	// they would collide. Those that test it pass --http-listen, which wins.
	os.Setenv("ROOMCAST_HTTP_LISTEN", "")
	goleak.VerifyTestMain(m)
}

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
	fs, _ := c.flagSet()
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

// The defaults are the built-in ones, whatever the environment holds: the
// environment is a layer over them (see TestFlagLayers).
func TestFlagDefaults(t *testing.T) {
	t.Setenv("ROOMCAST_LISTEN", "127.0.0.1:7000")
	t.Setenv("ROOMCAST_SERVER", "127.0.0.1:7001")
	want := map[string]map[string]string{
		"serve": {
			"listen":                "127.0.0.1:50051",
			"metrics-listen":        "127.0.0.1:9464",
			"max-message-bytes":     "1048576",
			"backlog-messages":      "1024",
			"backlog-bytes":         "4194304",
			"max-rooms-per-session": "256",
			"drain-timeout":         "10s",
			"jwt-max-lifetime":      "24h0m0s",
			"auth-failure-log-rate": "10",
			"log-level":             "INFO",
			"config":                "",
			"print-config":          "false",
		},
		"publish":   {"server": "127.0.0.1:50051"},
		"subscribe": {"server": "127.0.0.1:50051"},
	}
	for name, flags := range want {
		fs, _ := lookup(name).flagSet()
		for f, def := range flags {
			if got := fs.Lookup(f); got == nil || got.DefValue != def {
				t.Errorf("%s --%s: got %v, want default %q", name, f, got, def)
			}
		}
	}
}

// A usage error says what is wrong and where the usage is, not the whole
// usage.
func TestUsageErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		args    []string
		pointer string // where stderr must say the usage is
		says    string // and what it must say
	}{
		{[]string{"frobnicate"}, `Run "roomcast help" for the commands`, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `Run "roomcast help" for the commands`, `unknown command "frobnicate"`},
		{[]string{"serve", "--no-such-flag"}, serveCmd.helpPointer(), "flag provided but not defined: -no-such-flag"},
		{[]string{"serve", "extra"}, serveCmd.helpPointer(), "wrong number of arguments (1)"},
		{[]string{"serve", "--log-level", "loud"}, serveCmd.helpPointer(), "log-level"},
		{[]string{"serve", "--backlog-messages", "many"}, serveCmd.helpPointer(), "backlog-messages"},
		{[]string{"publish"}, publishCmd.helpPointer(), "wrong number of arguments (0)"},
		{[]string{"publish", "room", "a", "b"}, publishCmd.helpPointer(), "wrong number of arguments"},
		{[]string{"publish", "--header", "novalue", "room", "x"}, publishCmd.helpPointer(), "KEY=VALUE"},
		{[]string{"publish", "room", "x", "--header"}, publishCmd.helpPointer(), "flag needs an argument: -header"},
		{[]string{"subscribe"}, subscribeCmd.helpPointer(), "wrong number of arguments"},
		{[]string{"bench", "--quick"}, "go run ./cmd/roomcast-bench", "command of its own"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.pointer) || !strings.Contains(stderr, tc.says) || strings.Contains(stderr, "Usage:") {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2, %q and %q on stderr, and not the usage", tc.args, code, stdout, stderr, tc.says, tc.pointer)
		}
	}
	// Without a command, the commands are listed, without their flags.
	code, stdout, stderr := runCmd(ctx)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "no command given") || !strings.Contains(stderr, "subscribe") || strings.Contains(stderr, "--listen") {
		t.Errorf("no command: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}

func TestServeRefusesBadLimits(t *testing.T) {
	ctx := testCtx(t)
	// A limit that server.New refuses. (Not a message limit over the backlog,
	// for which New returns without closing the broker it made, whose janitor
	// goroutine goleak would report.)
	code, _, stderr := runCmd(ctx, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--max-rooms-per-session", "0")
	if code != 2 || !strings.Contains(stderr, "rooms per session") || !strings.Contains(stderr, serveCmd.helpPointer()) {
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
