package main

import (
	"context"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/client"
)

// runningSubscribe is "roomcast subscribe" running in-process.
type runningSubscribe struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	code           chan int
	session        string
}

func startSubscribe(t *testing.T, ctx context.Context, args ...string) *runningSubscribe {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s := &runningSubscribe{stdout: newSyncBuffer(), stderr: newSyncBuffer(), cancel: cancel, code: make(chan int, 1)}
	go func() { s.code <- run(ctx, append([]string{"subscribe"}, args...), s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop() })
	s.session = s.stderr.waitFor(t, ctx, subscribed)[1]
	return s
}

// stop asks the command to stop, as SIGINT does, and returns its exit code.
func (s *runningSubscribe) stop() int {
	s.cancel()
	code := <-s.code
	s.code <- code // for a later call
	return code
}

func TestPublishAndSubscribe(t *testing.T) {
	_, addr := startServer(t)
	ctx := testCtx(t)
	sub := startSubscribe(t, ctx, "--server", addr, "chat.a", "chat.b")
	other := startSubscribe(t, ctx, "--server", addr, "chat.a")

	code, stdout, stderr := runCmd(ctx, "publish", "--server", addr, "--exclude-session", other.session, "chat.a", "hello, world")
	if code != 0 || stdout != "1\n" || stderr != "" {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q; want 0 and \"1\\n\"", code, stdout, stderr)
	}
	// Data messages print as text when they are UTF-8, else in base64.
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, data := range []string{"héllo", "\x00\xff\xfe"} {
		if _, err := c.Publish(ctx, "chat.b", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if code, stdout, _ := runCmd(ctx, "publish", "--server", addr, "chat.a", "second"); code != 0 || stdout != "2\n" {
		t.Fatalf("second publish: exit %d, stdout %q", code, stdout)
	}

	// Each room's lines come in order; rooms may interleave either way.
	want := []string{"chat.a\t1\thello, world", "chat.a\t2\tsecond", "chat.b\t1\théllo", "chat.b\t2\tbase64:AP/+"}
	sub.stdout.waitFor(t, ctx, regexp.MustCompile(`^(?:[^\n]*\n){4}$`))
	got := strings.Split(strings.TrimSuffix(sub.stdout.String(), "\n"), "\n")
	for _, room := range []string{"chat.a", "chat.b"} {
		var lines, wantLines []string
		for _, l := range got {
			if strings.HasPrefix(l, room+"\t") {
				lines = append(lines, l)
			}
		}
		for _, l := range want {
			if strings.HasPrefix(l, room+"\t") {
				wantLines = append(wantLines, l)
			}
		}
		if !slices.Equal(lines, wantLines) {
			t.Errorf("room %s: printed %q, want %q", room, lines, wantLines)
		}
	}
	// The excluded session got only the second message.
	other.stdout.waitFor(t, ctx, regexp.MustCompile(`\n`))
	if out := other.stdout.String(); out != "chat.a\t2\tsecond\n" {
		t.Errorf("excluded subscriber printed %q", out)
	}

	for _, s := range []*runningSubscribe{sub, other} {
		if code := s.stop(); code != 0 {
			t.Errorf("subscribe stopped by a signal: exit %d, want 0; stderr:\n%s", code, s.stderr)
		}
	}
}

func TestPublishFlagsReachSubscribers(t *testing.T) {
	_, addr := startServer(t)
	ctx := testCtx(t)
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "room")
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(ctx, "publish", "--server", addr, "--content-type", "application/json",
		"--header", "k1=v1", "--header", "k2=a=b", "--session", sub.SessionID(), "room", `{"a":1}`)
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Message; m.GetText() != `{"a":1}` || m.GetContentType() != "application/json" || m.GetPublisherSession() != sub.SessionID() ||
		m.GetHeaders()["k1"] != "v1" || m.GetHeaders()["k2"] != "a=b" || len(m.GetHeaders()) != 2 {
		t.Errorf("got %v", ev)
	}
}

func TestClientCommandFailures(t *testing.T) {
	_, addr := startServer(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := lis.Addr().String()
	lis.Close()
	ctx := testCtx(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"publish", "--server", addr, "bad room", "x"}, "InvalidArgument"},
		{[]string{"publish", "--server", nowhere, "room", "x"}, "Unavailable"},
		{[]string{"subscribe", "--server", addr, "ok", "bad room"}, "InvalidArgument"},
		{[]string{"subscribe", "--server", nowhere, "room"}, "Unavailable"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and %s", tc.args, code, stdout, stderr, tc.says)
		}
	}
}

func TestServeInProcessWithMetrics(t *testing.T) {
	ctx := testCtx(t)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	stderr := newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- run(serveCtx, []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-level", "debug"}, io.Discard, stderr)
	}()
	addr := stderr.waitFor(t, ctx, grpcAddr)[1]
	maddr := stderr.waitFor(t, ctx, metricsAddr)[1]

	if code, stdout, errOut := runCmd(ctx, "publish", "--server", addr, "room", "x"); code != 0 || stdout != "1\n" {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	body := getMetrics(t, ctx, maddr)
	for _, want := range []string{"roomcast_messages_published_total 1", "grpc_server_handled_total", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	stop() // as SIGTERM does
	if code := <-exited; code != 0 {
		t.Errorf("serve exited with %d, want 0; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("serve did not log its stop:\n%s", stderr)
	}
}
