package main

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/server"
)

func TestHistoryCommand(t *testing.T) {
	_, addr := serverAt(t, "127.0.0.1:0", server.WithBrokerOptions(broker.WithHistory(4, time.Hour)))
	ctx := testCtx(t)
	keepRoom(t, ctx, addr, "news")
	publishTexts(t, ctx, addr, "news", "one", "two", "three", "four", "five")
	for _, tc := range []struct {
		args   []string
		stdout string
		stderr *regexp.Regexp
	}{
		{[]string{"news"}, "news\t2\ttwo\nnews\t3\tthree\nnews\t4\tfour\nnews\t5\tfive\n", // the room keeps 4
			regexp.MustCompile(`level=INFO msg=history room=news messages=4 newest_offset=5 epoch=\S+\n$`)},
		{[]string{"news", "--after", "3", "--limit", "1"}, "news\t4\tfour\n", regexp.MustCompile(`messages=1 newest_offset=5`)},
		{[]string{"--newest-first", "news", "--limit", "2"}, "news\t5\tfive\nnews\t4\tfour\n", regexp.MustCompile(`messages=2`)},
		{[]string{"news", "--after", "99"}, "",
			regexp.MustCompile(`level=WARN msg="offset 99 is past the newest offset of news, 5 \(epoch \S+\)" room=news after=99 newest_offset=5`)},
		{[]string{"empty"}, "", regexp.MustCompile(`messages=0 newest_offset=0 epoch=""`)},
	} {
		code, stdout, stderr := runCmd(ctx, append([]string{"history", "--server", addr}, tc.args...)...)
		if code != exitOK || stdout != tc.stdout || !tc.stderr.MatchString(stderr) {
			t.Errorf("history %q: exit %d, stdout %q, stderr %q; want 0, %q and %s", tc.args, code, stdout, stderr, tc.stdout, tc.stderr)
		}
	}
	code, stdout, _ := runCmd(ctx, "history", "--server", addr, "--json", "--after", "4", "news")
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); code != 0 || err != nil || m["room"] != "news" || m["offset"] != "5" || m["text"] != "five" {
		t.Errorf("history --json: exit %d, %q (%v)", code, stdout, err)
	}
	for _, args := range [][]string{{"history", "--server", addr, "--limit", "-1", "news"}, {"history", "--server", addr}, {"history", "--server", addr, "a", "b"}} {
		if code, _, stderr := runCmd(ctx, args...); code != exitUsage || !strings.Contains(stderr, historyCmd.helpPointer()) {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
}

func TestPresenceCommand(t *testing.T) {
	_, addr := serverAt(t, "127.0.0.1:0")
	ctx := testCtx(t)
	stub := roomcastv1.NewBrokerServiceClient(servertest.Dial(t, addr))
	var sessions []string
	for _, info := range []map[string]string{{"name": "ada", "role": "admin"}, {"name": "grace"}} {
		stream, err := stub.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, first.GetSession().GetSessionId())
		if err := stream.Send(&roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{
			Join: &roomcastv1.JoinCommand{Room: "chat", Presence: true, Info: info}}}); err != nil {
			t.Fatal(err)
		}
		if reply, err := stream.Recv(); err != nil || reply.GetReply().GetError() != nil {
			t.Fatalf("join with presence: %v %v", reply, err)
		}
	}
	code, stdout, stderr := runCmd(ctx, "presence", "chat", "--server", addr)
	want := regexp.MustCompile(`^` + sessions[0] + `\t\d{4}-\d\d-\d\dT[^\t]+Z\tname=ada,role=admin\n` + sessions[1] + `\t[^\t]+\tname=grace\n$`)
	if code != exitOK || !want.MatchString(stdout) || !strings.Contains(stderr, "msg=presence room=chat members=2 total=2") {
		t.Errorf("presence: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(ctx, "presence", "--server", addr, "--limit", "1", "--json", "chat")
	var m struct {
		SessionID string            `json:"session_id"`
		Info      map[string]string `json:"info"`
		JoinTime  string            `json:"join_time"`
	}
	if err := json.Unmarshal([]byte(stdout), &m); code != exitOK || err != nil || m.SessionID != sessions[0] || m.Info["name"] != "ada" || m.JoinTime == "" ||
		!strings.Contains(stderr, "members=1 total=2") {
		t.Errorf("presence --json --limit 1: exit %d, stdout %q (%v), stderr %q", code, stdout, err, stderr)
	}
}

func TestVersionCommand(t *testing.T) {
	ctx := testCtx(t)
	code, stdout, stderr := runCmd(ctx, "version")
	if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "roomcast ") ||
		!strings.Contains(stdout, "module   github.com/roomcast/roomcast\n") || !strings.Contains(stdout, "go       "+runtime.Version()+" ") {
		t.Errorf("version: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	// A binary built in a git checkout names its commit.
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git checkout to build from: %v", err)
	}
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if fi, serr := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || serr != nil || !fi.IsDir() {
		t.Skip("the go command records the commit only in a checkout whose .git is a directory, not in a git worktree")
	}
	bin := t.TempDir() + "/roomcast"
	if out, err := exec.CommandContext(ctx, "go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil || !regexp.MustCompile(`(?m)^commit   `+strings.TrimSpace(string(head))+`( \(modified\))?\ntime     \S+\n`).Match(out) {
		t.Errorf("version of a binary built from %s: %v\n%s", head, err, out)
	}
}

// The client commands present a client certificate for mutual TLS.
func TestClientCommandsMutualTLS(t *testing.T) {
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	cert, key := serverCA.ServerFiles(t)
	s := startServe(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", clientCA.File(t))
	ctx := testCtx(t)
	dir := t.TempDir()
	certPEM, keyPEM := clientCA.Issue(t, "cli", x509.ExtKeyUsageClientAuth)
	clientCert, clientKey := writeFile(t, dir, "client.crt", certPEM), writeFile(t, dir, "client.key", keyPEM)
	ca := serverCA.File(t)

	t.Setenv("ROOMCAST_TLS_KEY", clientKey) // from the environment, as any flag
	tls := []string{"--server", s.addr, "--tls-ca", ca, "--tls-cert", clientCert}
	sub := startSubscribe(t, ctx, append(tls, "room")...)
	if code, stdout, stderr := runCmd(ctx, append([]string{"publish", "room", "hi"}, tls...)...); code != exitOK || stdout != "1\n" {
		t.Fatalf("publish with a client certificate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	sub.stdout.waitFor(t, ctx, regexp.MustCompile(`^room\t1\thi\n$`))
	for _, cmd := range []string{"history", "presence"} {
		if code, _, stderr := runCmd(ctx, append([]string{cmd, "room"}, tls...)...); code != exitOK {
			t.Errorf("%s with a client certificate: exit %d, stderr %q", cmd, code, stderr)
		}
	}
	if code := sub.stop(); code != 0 {
		t.Errorf("subscribe: exit %d; stderr:\n%s", code, sub.stderr)
	}
	t.Setenv("ROOMCAST_TLS_KEY", "")

	otherPEM, otherKeyPEM := serverCA.Issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"publish", "--server", s.addr, "--tls-ca", ca, "room", "x"}, exitFail, "it may require a client certificate (--tls-cert and --tls-key)"},
		{[]string{"publish", "--server", s.addr, "--tls-ca", ca, "--tls-cert", writeFile(t, dir, "other.crt", otherPEM), "--tls-key", writeFile(t, dir, "other.key", otherKeyPEM), "room", "x"},
			exitFail, "it may not accept the client certificate of --tls-cert"},
		{[]string{"publish", "--server", s.addr, "--tls-ca", ca, "--tls-cert", clientCert, "room", "x"}, exitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"history", "--server", s.addr, "--tls-cert", clientCert, "--tls-key", clientKey, "room"}, exitUsage, "--tls-cert needs --tls-ca"},
		{[]string{"presence", "--server", s.addr, "--tls-ca", ca, "--tls-cert", clientCert, "--tls-key", writeFile(t, dir, "another.key", otherKey(t, clientCA)), "room"},
			exitFail, "private key does not match"},
	} {
		code, stdout, stderr := runCmd(ctx, tc.args...)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout, stderr, tc.code, tc.says)
		}
	}
}
