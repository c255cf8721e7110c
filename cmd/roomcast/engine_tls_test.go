package main

import (
	"os"
	"strings"
	"testing"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/redistest"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
)

// `roomcast serve --redis-tls` against a Redis that speaks TLS alone and
// requires client certificates: two nodes are one broker; a node without
// a client certificate, or trusting another CA, does not start and says
// why.
func TestServeOnRedisOverTLS(t *testing.T) {
	redis := redistest.Start(t, redistest.WithClientCerts())
	ctx := testCtx(t)
	tlsArgs := []string{"--engine", "redis", "--redis-addr", redis.Addr, "--redis-prefix", "tls", "--redis-tls",
		"--redis-tls-ca", redis.TLS.CAFile}
	withCert := append(tlsArgs[:len(tlsArgs):len(tlsArgs)], "--redis-tls-cert", redis.TLS.ClientCertFile, "--redis-tls-key", redis.TLS.ClientKeyFile)
	a := startServe(t, withCert...)
	b := startServe(t, append(withCert, "--redis-tls-server-name", testcert.ServerName)...)
	if _, err := publish(ctx, dialPlaintext(t, a.addr), "room", "over TLS"); err != nil {
		t.Fatal(err)
	}
	h, err := dialPlaintext(t, b.addr).History(ctx, &roomcastv1.HistoryRequest{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.GetMessages()) != 1 || h.GetMessages()[0].GetText() != "over TLS" {
		t.Errorf("history on the other node: %v", h)
	}

	for _, tc := range []struct {
		name string
		args []string
		says []string // any of
	}{
		{"no client certificate", tlsArgs, []string{"certificate required", "may require a client certificate"}},
		{"another CA", append(withCert[:len(withCert):len(withCert)], "--redis-tls-ca", testcert.NewCA(t, "other").File(t)),
			[]string{"tls: failed to verify certificate"}},
		{"another server name", append(withCert, "--redis-tls-server-name", "elsewhere.test"),
			[]string{"tls: failed to verify certificate"}},
	} {
		code, _, stderr := runCmd(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)...)
		found := false
		for _, s := range tc.says {
			found = found || strings.Contains(stderr, s)
		}
		if code != exitFail || !found || !strings.Contains(stderr, redis.Addr) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d naming %s and one of %q", tc.name, code, stderr, exitFail, redis.Addr, tc.says)
		}
	}
}

func TestServeRedisTLSFlagsAreChecked(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	writable := writeFile(t, dir, "key.pem", []byte("not a key"))
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	redis := []string{"--engine", "redis", "--redis-addr", "127.0.0.1:6379"}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{append(redis, "--redis-tls-ca", "ca.pem"), exitUsage, "--redis-tls-ca needs --redis-tls"},
		{append(redis, "--redis-tls-server-name", "r.test"), exitUsage, "--redis-tls-server-name needs --redis-tls"},
		{append(redis, "--redis-tls", "--redis-tls-cert", "c.pem"), exitUsage, "--redis-tls-cert and --redis-tls-key go together"},
		{append(redis, "--redis-tls", "--redis-tls-key", "k.pem"), exitUsage, "--redis-tls-cert and --redis-tls-key go together"},
		{[]string{"--redis-tls"}, exitUsage, "--redis-tls needs --engine redis"},
		{[]string{"--engine", "redis", "--redis-addr", "10.1.2.3:6379"}, exitUsage, "with --redis-tls"},
		{append(redis, "--redis-tls", "--redis-tls-ca", "/nonexistent/ca.pem"), exitFail, "--redis-tls-ca"},
		{append(redis, "--redis-tls", "--redis-tls-cert", writable, "--redis-tls-key", writable), exitFail, "refusing a key file"},
	} {
		code, _, stderr := runCmd(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.says) {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit %d and %q", tc.args, code, stderr, tc.code, tc.says)
		}
	}
	// Beyond loopback, --redis-tls takes the place of --insecure-plaintext.
	f := engineFlags{engine: "redis", redisAddrs: "10.1.2.3:6379,redis.internal:6380", redisTimeout: time.Second, redisTLS: true}
	if err := f.validate(false); err != nil {
		t.Errorf("--redis-tls beyond loopback: %v", err)
	}
	// --print-config shows the flags, and their environment variables set
	// them.
	t.Setenv("ROOMCAST_REDIS_TLS_SERVER_NAME", "redis.test")
	code, stdout, stderr := runCmd(ctx, "serve", "--print-config", "--engine", "redis", "--redis-addr", "10.1.2.3:6379", "--redis-tls",
		"--redis-tls-ca", "/etc/ca.pem")
	if code != exitOK || !strings.Contains(stdout, "redis-tls true  # flag\n") || !strings.Contains(stdout, "redis-tls-ca /etc/ca.pem  # flag\n") ||
		!strings.Contains(stdout, "redis-tls-server-name redis.test  # $ROOMCAST_REDIS_TLS_SERVER_NAME\n") || !strings.Contains(stdout, "redis-tls-cert \"\"  # default\n") {
		t.Errorf("--print-config: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}
