package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// serverAt runs a server on addr until the end of the test or its Close.
func serverAt(t *testing.T, addr string, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return servertest.StartAt(t, addr, opts...)
}

// publishTexts publishes each text to room with the client library.
func publishTexts(t *testing.T, ctx context.Context, addr, room string, texts ...string) {
	t.Helper()
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, text := range texts {
		if _, err := c.PublishText(ctx, room, text); err != nil {
			t.Fatal(err)
		}
	}
}

// keepRoom subscribes to room for the test's duration, so that the room
// and its history outlive the commands' subscriptions.
func keepRoom(t *testing.T, ctx context.Context, addr, room string) {
	t.Helper()
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeAfter(t *testing.T) {
	_, addr := serverAt(t, "127.0.0.1:0", server.WithBrokerOptions(broker.WithHistory(3, time.Hour)))
	ctx := testCtx(t)
	keepRoom(t, ctx, addr, "news")
	publishTexts(t, ctx, addr, "news", "one", "two", "three", "four", "five")

	sub := startSubscribe(t, ctx, "--server", addr, "--after", "3", "news")
	sub.stdout.waitFor(t, ctx, regexp.MustCompile(`^news\t4\tfour\nnews\t5\tfive\n$`))
	publishTexts(t, ctx, addr, "news", "six")
	sub.stdout.waitFor(t, ctx, regexp.MustCompile(`\nnews\t6\tsix\n$`))
	if strings.Contains(sub.stderr.String(), "gap") {
		t.Errorf("a resume within the history reported a gap:\n%s", sub.stderr)
	}

	// Offset 1 is older than the 3 messages the room keeps: a gap.
	lost := startSubscribe(t, ctx, "--server", addr, "--after", "1", "news")
	lost.stderr.waitFor(t, ctx, regexp.MustCompile(`msg="gap: messages lost" room=news last_delivered=1 last_epoch="" resumed_after=6 epoch=\S+`))
	publishTexts(t, ctx, addr, "news", "seven")
	lost.stdout.waitFor(t, ctx, regexp.MustCompile(`^news\t7\tseven\n$`))
	for _, s := range []*runningSubscribe{sub, lost} {
		if code := s.stop(); code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, s.stderr)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--after", "1", "a", "b"}, exitUsage, "--after resumes one room; 2 given"},
		{[]string{"--after", "-1", "a"}, exitUsage, "want an offset"},
		{[]string{"--after", "99", "news"}, exitFail, "--after: offset 99 is past the newest offset of news, 7 (epoch "},
		{[]string{"--after", "1", "empty"}, exitFail, "--after: offset 1 is past the newest offset of empty, which has no message yet"},
	} {
		code, stdout, stderr := runCmd(ctx, append([]string{"subscribe", "--server", addr}, tc.args...)...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant %d and %q", tc.args, code, stdout, stderr, tc.code, tc.says)
		}
	}
}

func TestSubscribeJSON(t *testing.T) {
	_, addr := serverAt(t, "127.0.0.1:0")
	ctx := testCtx(t)
	sub := startSubscribe(t, ctx, "--server", addr, "--json", "chat")
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.PublishText(ctx, "chat", `{"a":1}`, client.WithContentType("application/json"), client.WithHeaders(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "chat", []byte{0, 0xff}); err != nil {
		t.Fatal(err)
	}
	out := sub.stdout.waitFor(t, ctx, regexp.MustCompile(`^(\{.*\})\n(\{.*\})\n$`))
	var text, data map[string]any
	if err := json.Unmarshal([]byte(out[1]), &text); err != nil {
		t.Fatalf("%q: %v", out[1], err)
	}
	if err := json.Unmarshal([]byte(out[2]), &data); err != nil {
		t.Fatalf("%q: %v", out[2], err)
	}
	if text["room"] != "chat" || text["offset"] != "1" || text["text"] != `{"a":1}` || text["content_type"] != "application/json" ||
		text["headers"].(map[string]any)["k"] != "v" || text["publish_time"] == nil || text["gap"] != nil {
		t.Errorf("text message as %s", out[1])
	}
	if data["offset"] != "2" || data["data"] != "AP8=" {
		t.Errorf("data message as %s", out[2])
	}
	if code := sub.stop(); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, sub.stderr)
	}
}

// subscribe keeps going across a server restart: it reconnects by itself,
// says so on stderr, and reports the history the restart lost.
func TestSubscribeSurvivesServerRestart(t *testing.T) {
	srv, addr := serverAt(t, "127.0.0.1:0")
	ctx := testCtx(t)
	text := startSubscribe(t, ctx, "--server", addr, "chat")
	asJSON := startSubscribe(t, ctx, "--server", addr, "--json", "chat")
	publishTexts(t, ctx, addr, "chat", "before")
	text.stdout.waitFor(t, ctx, regexp.MustCompile(`^chat\t1\tbefore\n$`))
	asJSON.stdout.waitFor(t, ctx, regexp.MustCompile(`^\{.*"offset":"1".*\}\n$`))

	srv.Close()
	for _, s := range []*runningSubscribe{text, asJSON} {
		s.stderr.waitFor(t, ctx, regexp.MustCompile(`level=WARN msg="disconnected; reconnecting" err="(the server is unavailable: |cannot reach )`))
	}
	serverAt(t, addr)
	for _, s := range []*runningSubscribe{text, asJSON} {
		s.stderr.waitFor(t, ctx, regexp.MustCompile(`level=INFO msg=reconnected session=\S+ attempts=\d+ downtime=\S+\n.*msg=rejoined room=chat recovered=false after=0 epoch=\S+\n`))
	}
	text.stderr.waitFor(t, ctx, regexp.MustCompile(`level=WARN msg="gap: messages lost" room=chat last_delivered=1 last_epoch=\S+ resumed_after=0 epoch=\S+`))
	gap := asJSON.stdout.waitFor(t, ctx, regexp.MustCompile(`\n(\{"gap":.*\})\n$`))[1]
	var g struct {
		Gap struct {
			Room          string            `json:"room"`
			LastDelivered map[string]string `json:"last_delivered"`
			Resumed       map[string]string `json:"resumed"`
		} `json:"gap"`
	}
	if err := json.Unmarshal([]byte(gap), &g); err != nil || g.Gap.Room != "chat" || g.Gap.LastDelivered["offset"] != "1" ||
		g.Gap.Resumed["offset"] != "0" || g.Gap.Resumed["epoch"] == "" || g.Gap.Resumed["epoch"] == g.Gap.LastDelivered["epoch"] {
		t.Errorf("gap as %s (%v): want offset 1 to 0 of a new epoch", gap, err)
	}

	publishTexts(t, ctx, addr, "chat", "after")
	text.stdout.waitFor(t, ctx, regexp.MustCompile(`^chat\t1\tbefore\nchat\t1\tafter\n$`))
	asJSON.stdout.waitFor(t, ctx, regexp.MustCompile(`\n\{.*"text":"after".*\}\n$`))
	for _, s := range []*runningSubscribe{text, asJSON} {
		if code := s.stop(); code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, s.stderr)
		}
	}
}

// publish and subscribe over TLS with a bearer token, from --token or
// $ROOMCAST_TOKEN.
func TestClientCommandsTLSAndToken(t *testing.T) {
	tlsCA := testcert.NewCA(t, "roomcast test CA")
	cert, ca := tlsCA.ServerCert(t), tlsCA.File(t)
	addr := testjwt.StartServer(t, server.WithGRPCOptions(grpc.Creds(credentials.NewServerTLSFromCert(&cert))))
	ctx := testCtx(t)
	all := testjwt.Grants(t, ">", ">", "")
	tok := testjwt.Token(t, "cli", time.Now().Add(time.Hour), all)
	_, port, _ := net.SplitHostPort(addr)

	t.Setenv("ROOMCAST_TOKEN", tok)
	sub := startSubscribe(t, ctx, "--server", addr, "--tls-ca", ca, "secure")
	code, stdout, stderr := runCmd(ctx, "publish", "--server", "localhost:"+port, "--tls-ca", ca, "--tls-server-name", testcert.ServerName, "--token", tok, "secure", "hi")
	if code != 0 || stdout != "1\n" {
		t.Fatalf("publish over TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	sub.stdout.waitFor(t, ctx, regexp.MustCompile(`^secure\t1\thi\n$`))
	if code := sub.stop(); code != 0 {
		t.Errorf("exit %d; stderr:\n%s", code, sub.stderr)
	}

	t.Setenv("ROOMCAST_TOKEN", "")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"publish", "--server", addr, "--tls-ca", ca, "secure", "x"}, exitFail, "the server wants a credential ("},
		{[]string{"publish", "--server", addr, "--token", tok, "secure", "x"}, exitFail, "does the server require TLS? Give --tls-ca FILE"},
		{[]string{"publish", "--server", addr, "--tls-ca", ca, "--token", "not-a-token", "secure", "x"}, exitFail, "the server refused the credential: "},
		{[]string{"subscribe", "--server", addr, "--tls-ca", ca, "--token", testjwt.Token(t, "cli", time.Now().Add(-time.Minute), all), "secure"}, exitFail, "the server refused the credential: "},
		{[]string{"publish", "--server", addr, "--tls-server-name", "x", "secure", "x"}, exitUsage, "--tls-server-name needs --tls-ca"},
		{[]string{"subscribe", "--server", addr, "--tls-ca", filepath.Join(t.TempDir(), "none.pem"), "secure"}, exitFail, "--tls-ca"},
		{[]string{"publish", "--server", addr, "--tls-ca", notPEM, "secure", "x"}, exitFail, "no PEM certificate"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant %d and %q", tc.args, code, stdout, stderr, tc.code, tc.says)
		}
	}
}

// publish and subscribe send a token without TLS only to a loopback
// --server, unless --insecure-plaintext-token says the network is trusted.
func TestClientCommandsRefusePlaintextTokenBeyondLoopback(t *testing.T) {
	_, addr := serverAt(t, "127.0.0.1:0", server.WithAuthenticator(testjwt.Authenticator(t)))
	_, port, _ := net.SplitHostPort(addr)
	beyond := "0.0.0.0:" + port // not a loopback address, though Linux connects it to this machine
	ctx := testCtx(t)
	tok := testjwt.Token(t, "cli", time.Now().Add(time.Hour), testjwt.Grants(t, ">", ">", ""))
	for _, args := range [][]string{
		{"publish", "--server", beyond, "--token", tok, "r", "x"},
		{"subscribe", "--server", beyond, "--token", tok, "r"},
	} {
		code, stdout, stderr := runCmd(ctx, args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "refusing to send the token in plaintext") || !strings.Contains(stderr, "--insecure-plaintext-token") {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant a usage error saying what to do", args, code, stdout, stderr)
		}
	}
	t.Setenv("ROOMCAST_TOKEN", tok)
	if code, _, stderr := runCmd(ctx, "publish", "--server", beyond, "r", "x"); code != exitUsage {
		t.Errorf("$ROOMCAST_TOKEN to %s: exit %d, stderr %q; want a usage error", beyond, code, stderr)
	}
	if code, stdout, stderr := runCmd(ctx, "publish", "--server", addr, "r", "x"); code != 0 || stdout != "1\n" {
		t.Errorf("to loopback: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr := runCmd(ctx, "publish", "--server", beyond, "--insecure-plaintext-token", "r", "x")
	if runtime.GOOS == "linux" && (code != 0 || stdout != "2\n") || code == exitUsage {
		t.Errorf("with --insecure-plaintext-token: exit %d, stdout %q, stderr %q; want it sent", code, stdout, stderr)
	}
}
