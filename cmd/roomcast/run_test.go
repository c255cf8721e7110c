package main

import (
	"context"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
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

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// Errors read as a person wants them: what happened and what to do, not a
// gRPC status with nested descriptions and escaped quotes.
func TestClientCommandFailures(t *testing.T) {
	_, addr := startServer(t)
	nowhere := freeAddr(t)
	ctx := testCtx(t)
	refused := "cannot reach " + nowhere + ": connection refused — is `roomcast serve` running?\n"
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"publish", "--server", nowhere, "room", "x"}, exitFail, "roomcast publish: " + refused},
		{[]string{"history", "--server", nowhere, "room"}, exitFail, "roomcast history: " + refused},
		{[]string{"presence", "--server", nowhere, "room"}, exitFail, "roomcast presence: " + refused},
		{[]string{"publish", "--server", "no-such-host.invalid:50051", "room", "x"}, exitFail, "cannot reach no-such-host.invalid:50051: no such host"},
		{[]string{"publish", "--server", addr, "bad room", "x"}, exitUsage, `room name "bad room" has a character that is not allowed`},
		{[]string{"subscribe", "--server", addr, "ok", "bad room"}, exitUsage, `room name "bad room" has a character that is not allowed`},
		{[]string{"subscribe", "--server", addr, "chat.*"}, exitUsage, `"chat.*" is a pattern: wildcards (* and >) are for grants`},
		{[]string{"publish", "--server", addr, "chat.>", "x"}, exitUsage, `"chat.>" is a pattern`},
		{[]string{"history", "--server", addr, "news.*"}, exitUsage, `"news.*" is a pattern`},
		{[]string{"publish", "--server", addr, "--session", "nosuch", "room", "x"}, exitFail, "roomcast publish: "}, // the server refuses it
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, tc.code, tc.says)
		}
		if strings.Contains(stderr, "rpc error") || strings.Contains(stderr, `\"`) || strings.Contains(stderr, "desc =") {
			t.Errorf("%q: stderr %q is a gRPC status, not words", tc.args, stderr)
		}
	}
}

// subscribe started before the server waits for it, saying so, as it does
// when the server goes away later.
func TestSubscribeWaitsForTheServer(t *testing.T) {
	ctx := testCtx(t)
	addr := freeAddr(t)
	out, errOut := newSyncBuffer(), newSyncBuffer()
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	exited := make(chan int, 1)
	go func() { exited <- run(subCtx, []string{"subscribe", "--server", addr, "room"}, out, errOut) }()
	waiting := regexp.MustCompile(`level=WARN msg="not subscribed yet; retrying" in=\S+ err="cannot reach ` + regexp.QuoteMeta(addr) + `: connection refused — is ` + "`roomcast serve`" + ` running\?"\n(?s:.*)retrying`)
	errOut.waitFor(t, ctx, waiting) // twice
	serverAt(t, addr)
	errOut.waitFor(t, ctx, subscribed)
	publishTexts(t, ctx, addr, "room", "at last")
	out.waitFor(t, ctx, regexp.MustCompile(`^room\t1\tat last\n$`))
	stop()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, errOut)
	}

	// Without TLS towards a TLS server, waiting would not help.
	tlsCA := testcert.NewCA(t, "roomcast test CA")
	cert := tlsCA.ServerCert(t)
	_, tlsAddr := serverAt(t, "127.0.0.1:0", server.WithGRPCOptions(grpc.Creds(credentials.NewServerTLSFromCert(&cert))))
	code, _, stderr := runCmd(ctx, "subscribe", "--server", tlsAddr, "room")
	if code != exitFail || !strings.Contains(stderr, "does the server require TLS?") {
		t.Errorf("plaintext to a TLS server: exit %d, stderr %q; want 1 at once", code, stderr)
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
