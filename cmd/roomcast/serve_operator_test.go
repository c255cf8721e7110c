package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
)

// TestServeAccessLogLevel checks that --access-log-level sets the level of
// the access lines (of a failed Publish here: a successful one is logged at
// debug), that off logs none, and that a bad value is a usage error.
func TestServeAccessLogLevel(t *testing.T) {
	ctx := testCtx(t)
	code, _, stderr := runCmd(ctx, "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--access-log-level", "loud")
	if code != 2 || !strings.Contains(stderr, "want debug, info, warn, error or off") {
		t.Errorf("--access-log-level loud: exit %d, stderr:\n%s", code, stderr)
	}
	for _, tc := range []struct {
		level string
		want  string // in the access line; "" for none
	}{
		{"warn", `level=WARN msg="finished call"`},
		{"off", ""},
	} {
		s := startServe(t, "--access-log-level", tc.level)
		if _, err := publish(ctx, dialPlaintext(t, s.addr), "", "x"); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("publish to no room: %v, want InvalidArgument", err)
		}
		// The line is written before the answer is sent.
		out := s.stderr.String()
		switch {
		case tc.want != "" && !strings.Contains(out, tc.want+" grpc.service=roomcast.v1.BrokerService grpc.method=Publish grpc.method_type=unary peer.address=127.0.0.1:"):
			t.Errorf("--access-log-level %s: no %s line for the publish:\n%s", tc.level, tc.want, out)
		case tc.want == "" && strings.Contains(out, "finished call"):
			t.Errorf("--access-log-level off logged an access line:\n%s", out)
		}
	}
}

// TestServeStatusPage checks that the status page is on the metrics
// listener, and that --status-page-tail turns its tail on, with a warning.
func TestServeStatusPage(t *testing.T) {
	for _, tail := range []bool{false, true} {
		ctx := testCtx(t)
		serveCtx, stop := context.WithCancel(ctx)
		stderr := newSyncBuffer()
		exited := make(chan int, 1)
		args := []string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}
		if tail {
			args = append(args, "--status-page-tail")
		}
		go func() { exited <- run(serveCtx, args, io.Discard, stderr) }()
		maddr := stderr.waitFor(t, ctx, metricsAddr)[1]
		for path, want := range map[string]string{
			"/status":          "roomcast status",
			"/status/api/info": `"engine":"memory"`,
		} {
			if code, body := httpGet(t, ctx, "http://"+maddr+path); code != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("GET %s: %d %s, want 200 and %q", path, code, body, want)
			}
		}
		want := http.StatusForbidden
		if tail {
			want = http.StatusOK
		}
		tailCtx, endTail := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(tailCtx, http.MethodGet, "http://"+maddr+"/status/api/tail?room=chat", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("tail with --status-page-tail=%v: %s, want %d", tail, resp.Status, want)
		}
		resp.Body.Close()
		endTail()
		if warned := strings.Contains(stderr.String(), "--status-page-tail"); warned != tail {
			t.Errorf("--status-page-tail=%v: warning logged %v:\n%s", tail, warned, stderr)
		}
		stop()
		if code := <-exited; code != 0 {
			t.Errorf("serve exited with %d; stderr:\n%s", code, stderr)
		}
	}
}

func httpGet(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeAdminKey checks AdminService end to end: a key made with
// "apikey new --admin" may call it on a server with --api-keys-file, and a
// key with every room but no admin grant may not.
func TestServeAdminKey(t *testing.T) {
	ctx := testCtx(t)
	file := filepath.Join(t.TempDir(), "keys.jsonl")
	newKey := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runCmd(ctx, append([]string{"apikey", "new", "--file", file}, args...)...)
		if code != 0 {
			t.Fatalf("apikey new %q: exit %d, stderr %s", args, code, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	admin := newKey("--subject", "ops", "--admin")
	everyRoom := newKey("--subject", "svc", "--publish", ">", "--subscribe", ">", "--presence", ">")
	s := startServe(t, "--api-keys-file", file)
	a := roomcastv1.NewAdminServiceClient(servertest.Dial(t, s.addr))
	info, err := a.GetServerInfo(withBearer(ctx, admin), &roomcastv1.GetServerInfoRequest{})
	if err != nil || info.GetEngine() != "memory" {
		t.Errorf("GetServerInfo with the admin key: %v, %v", info, err)
	}
	if _, err := a.GetServerInfo(withBearer(ctx, everyRoom), &roomcastv1.GetServerInfoRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetServerInfo with a key of every room but no admin grant: %v, want PERMISSION_DENIED", err)
	}
	if _, err := publish(withBearer(ctx, admin), dialPlaintext(t, s.addr), "room", "x"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("publish with the admin key: %v, want PERMISSION_DENIED: admin grants no room", err)
	}
}
