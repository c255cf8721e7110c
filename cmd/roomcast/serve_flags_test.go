package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/server"
)

func TestCheckPlaintext(t *testing.T) {
	for _, tc := range []struct {
		listen   string
		loopback bool
	}{
		{"127.0.0.1:50051", true},
		{"127.1.2.3:0", true},
		{"[::1]:50051", true},
		{"[::ffff:127.0.0.1]:50051", true},
		{"localhost:50051", true},
		{"LocalHost.:50051", true},
		{"0.0.0.0:50051", false},
		{"[::]:50051", false},
		{":50051", false},
		{"192.168.1.10:50051", false},
		{"10.0.0.7:0", false},
		{"[fd00::1]:50051", false},
		{"[fe80::1%eth0]:50051", false},
		{"broker.internal:50051", false},
		{"localhost.example:50051", false},
		{"mylocalhost:50051", false},
	} {
		err := checkPlaintext(tc.listen, false)
		if tc.loopback != (err == nil) {
			t.Errorf("checkPlaintext(%q): %v; want allowed %v", tc.listen, err, tc.loopback)
		}
		if err != nil && (!strings.Contains(err.Error(), "--insecure-plaintext") || !strings.Contains(err.Error(), "--tls-cert")) {
			t.Errorf("checkPlaintext(%q): %q does not say what to do", tc.listen, err)
		}
		if err := checkPlaintext(tc.listen, true); err != nil {
			t.Errorf("checkPlaintext(%q) with --insecure-plaintext: %v", tc.listen, err)
		}
	}
	if err := checkPlaintext("127.0.0.1", true); err == nil {
		t.Error("checkPlaintext accepts an address without a port")
	}
}

func TestServeRefusesPlaintextBeyondLoopback(t *testing.T) {
	ctx := testCtx(t)
	for _, listen := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:0"} {
		code, stdout, stderr := runCmd(ctx, "serve", "--listen", listen, "--metrics-listen", "")
		if code != 2 || stdout != "" || !strings.Contains(stderr, "refusing to serve plaintext gRPC") ||
			!strings.Contains(stderr, "--insecure-plaintext") || !strings.Contains(stderr, serveCmd.helpPointer()) {
			t.Errorf("serve --listen %s: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and what to do", listen, code, stdout, stderr)
		}
	}
}

func TestServeExposureWarnings(t *testing.T) {
	lan := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 50051}
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50051}
	log := func() (*slog.Logger, *bytes.Buffer) {
		var buf bytes.Buffer
		return slog.New(slog.NewTextHandler(&buf, nil)), &buf
	}
	for _, tc := range []struct {
		name      string
		transport transportFlags
		addr      net.Addr
		auth      []any
		ok        bool
		says      []string
	}{
		{"open on loopback", transportFlags{}, loop, nil, true, []string{"level=WARN", "server is open"}},
		{"plaintext beyond loopback", transportFlags{}, lan, nil, false, []string{"level=ERROR", "refusing to serve plaintext"}},
		{"insecure plaintext, open", transportFlags{insecurePlaintext: true}, lan, nil, true,
			[]string{"INSECURE: serving plaintext gRPC beyond loopback", "INSECURE: no credentials configured"}},
		{"insecure plaintext, authenticated", transportFlags{insecurePlaintext: true}, lan, []any{"api_keys", 1}, true,
			[]string{"INSECURE: serving plaintext gRPC beyond loopback", "api_keys=1"}},
		{"TLS, open", transportFlags{cert: "c", key: "k"}, lan, nil, true, []string{"level=ERROR", "INSECURE: no credentials configured", "transport=tls"}},
		{"TLS, authenticated", transportFlags{cert: "c", key: "k"}, lan, []any{"api_keys", 1}, true, []string{"level=INFO", "api_keys=1"}},
	} {
		l, buf := log()
		cfg := &serveConfig{transport: tc.transport}
		if ok := cfg.exposureChecks(l, tc.addr, tc.auth); ok != tc.ok {
			t.Errorf("%s: exposure checks passed %v, want %v", tc.name, ok, tc.ok)
		}
		for _, want := range tc.says {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("%s: log lacks %q:\n%s", tc.name, want, buf)
			}
		}
		if tc.auth != nil && strings.Contains(buf.String(), "no credentials") {
			t.Errorf("%s: warns of no credentials:\n%s", tc.name, buf)
		}
	}
}

func TestServeSecurityFlagDefaults(t *testing.T) {
	want := map[string]string{
		"tls-cert":                           "",
		"tls-key":                            "",
		"tls-client-ca":                      "",
		"insecure-plaintext":                 "false",
		"jwt-hmac-secret-file":               "",
		"jwt-public-key-file":                "",
		"jwt-jwks-file":                      "",
		"jwt-issuer":                         "",
		"jwt-audience":                       "",
		"api-keys-file":                      "",
		"allow-anonymous":                    "false",
		"anonymous-publish":                  "",
		"anonymous-subscribe":                "",
		"anonymous-presence":                 "",
		"publish-rate":                       "10000",
		"publish-burst":                      "1000",
		"anonymous-publish-rate":             fmt.Sprint(server.DefaultAnonymousPublishRate),
		"anonymous-publish-burst":            fmt.Sprint(server.DefaultAnonymousPublishBurst),
		"publish-byte-rate":                  fmt.Sprint(server.DefaultPublishByteRate),
		"publish-byte-burst":                 fmt.Sprint(server.DefaultPublishByteBurst),
		"command-rate":                       fmt.Sprint(server.DefaultCommandRate),
		"command-burst":                      fmt.Sprint(server.DefaultCommandBurst),
		"max-streams":                        fmt.Sprint(server.DefaultMaxStreams),
		"max-streams-per-connection":         fmt.Sprint(server.DefaultMaxStreamsPerConnection),
		"max-rooms":                          fmt.Sprint(broker.DefaultMaxRooms),
		"history-messages":                   fmt.Sprint(broker.DefaultHistoryMessages),
		"history-ttl":                        broker.DefaultHistoryTTL.String(),
		"write-timeout":                      server.DefaultWriteTimeout.String(),
		"max-write-hold":                     server.DefaultMaxWriteHold.String(),
		"max-header-bytes":                   fmt.Sprint(server.DefaultMaxHeaderBytes),
		"max-connections":                    fmt.Sprint(server.DefaultMaxConnections),
		"max-connection-idle":                server.DefaultMaxConnectionIdle.String(),
		"auth-timeout":                       server.DefaultAuthTimeout.String(),
		"accept-pace-after":                  fmt.Sprint(server.DefaultAcceptPaceAfter),
		"accept-pace":                        fmt.Sprint(server.DefaultAcceptPace),
		"accept-pace-burst":                  fmt.Sprint(server.DefaultAcceptPaceBurst),
		"max-pending-per-address":            fmt.Sprint(server.DefaultMaxPendingPerAddress),
		"refused-hold":                       server.DefaultRefusedHold.String(),
		"refused-hold-max":                   "0",
		"max-streams-per-credential":         fmt.Sprint(server.DefaultMaxStreamsPerCredential),
		"max-publish-streams-per-credential": fmt.Sprint(server.DefaultMaxPublishStreamsPerCredential),
		"max-paused-streams":                 fmt.Sprint(server.DefaultMaxPausedStreams),
		"max-paused-streams-per-credential":  fmt.Sprint(server.DefaultMaxPausedStreamsPerCredential),
		"read-rate":                          fmt.Sprint(server.DefaultReadRate),
		"read-burst":                         fmt.Sprint(server.DefaultReadBurst),
		"read-byte-rate":                     fmt.Sprint(server.DefaultReadByteRate),
		"read-byte-burst":                    fmt.Sprint(server.DefaultReadByteBurst),
		"credential-command-rate":            fmt.Sprint(server.DefaultCredentialCommandRate),
		"credential-command-burst":           fmt.Sprint(server.DefaultCredentialCommandBurst),
		"max-refused-commands":               fmt.Sprint(server.DefaultMaxRefusedCommands),
		"max-refused-calls":                  fmt.Sprint(server.DefaultMaxRefusedCalls),
		"abuse-penalty":                      server.DefaultAbusePenalty.String(),
		"stream-window":                      fmt.Sprint(server.DefaultStreamWindow),
		"conn-window":                        fmt.Sprint(server.DefaultConnWindow),
		"max-unfinished-bytes":               fmt.Sprint(server.DefaultMaxUnfinishedBytes),
		"max-unfinished-bytes-per-address":   fmt.Sprint(server.DefaultMaxUnfinishedBytesPerAddress),
		"unfinished-read-rate":               fmt.Sprint(server.DefaultUnfinishedReadRate),
		"request-frame-rate":                 fmt.Sprint(server.DefaultRequestFrameRate),
		"large-request-turn":                 fmt.Sprint(server.DefaultLargeRequestTurn),
	}
	fs, _ := serveCmd.flagSet()
	for name, def := range want {
		if f := fs.Lookup(name); f == nil || f.DefValue != def {
			t.Errorf("serve --%s: got %v, want default %q", name, f, def)
		}
	}
}

func TestServeFlagUsageErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert"},
		{[]string{"--insecure-plaintext", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "contradicts"},
		{[]string{"--jwt-hmac-secret-file", "s"}, "--jwt-issuer and --jwt-audience are required"},
		{[]string{"--jwt-jwks-file", "j", "--jwt-issuer", "i"}, "--jwt-issuer and --jwt-audience are required"},
		{[]string{"--jwt-public-key-file", "p", "--jwt-audience", " , "}, "--jwt-issuer and --jwt-audience are required"},
		{[]string{"--jwt-issuer", "i", "--jwt-audience", "a"}, "need a JWT key"},
		{[]string{"--jwt-public-key-file", ""}, "empty path"},
		{[]string{"--anonymous-publish", "public.>"}, "--anonymous-publish needs --allow-anonymous"},
		{[]string{"--allow-anonymous", "--anonymous-subscribe", "chat.>.x"}, "--anonymous-subscribe: invalid room pattern"},
		{[]string{"--max-streams-per-connection", "0"}, "--max-streams-per-connection must be 1 to"},
		{[]string{"--max-streams-per-connection", "4294967296"}, "--max-streams-per-connection must be 1 to"},
		{[]string{"--publish-rate", "5", "--publish-burst", "0"}, "publish rate needs a positive burst"},
		{[]string{"--anonymous-publish-rate", "5", "--anonymous-publish-burst", "0"}, "--anonymous-publish-rate needs a positive --anonymous-publish-burst"},
		{[]string{"--command-rate", "-1"}, "command rate"},
		{[]string{"--stream-reset-rate", "5", "--stream-reset-burst", "0"}, "stream reset rate needs a positive burst"},
		{[]string{"--max-streams", "0"}, "total streams"},
		{[]string{"--accept-pace", "5", "--accept-pace-burst", "0"}, "accept pace needs a positive burst"},
		{[]string{"--accept-pace-after", "-1"}, "accept pace threshold"},
		{[]string{"--accept-pace", "NaN"}, "accept pace must be a finite number"},
		{[]string{"--accept-pace", "-1"}, "accept pace must be a finite number"},
		{[]string{"--max-pending-per-address", "-1"}, "max pending connections per address"},
		{[]string{"--refused-hold", "-1s"}, "refused connections' hold"},
		{[]string{"--refused-hold-max", "-1"}, "most refused connections held"},
		{[]string{"--max-rooms", "0"}, "room limit"},
		{[]string{"--history-messages", "10", "--history-ttl", "0s"}, "history"},
		{[]string{"--write-timeout", "0s"}, "write timeout"},
		{[]string{"--max-header-bytes", "100"}, "max header bytes"},
		{[]string{"--max-connections", "0"}, "max connections"},
		{[]string{"--max-connection-idle", "-1s"}, "max connection idle"},
		{[]string{"--auth-timeout", "-1s"}, "auth timeout"},
		{[]string{"--abuse-penalty", "-1s"}, "abuse penalty"},
		{[]string{"--max-unfinished-bytes-per-address", "1000"}, "max unfinished bytes"},
		{[]string{"--max-unfinished-bytes", "1000000"}, "max unfinished bytes"},
		{[]string{"--max-unfinished-bytes", "-1"}, "max unfinished bytes"},
		{[]string{"--unfinished-read-rate", "-1"}, "unfinished read rate"},
		{[]string{"--request-frame-rate", "-1"}, "request frame rate"},
		{[]string{"--large-request-turn", "-1"}, "large request turn"},
		{[]string{"--max-streams-per-credential", "0"}, "streams per credential"},
		{[]string{"--max-publish-streams-per-credential", "0"}, "publish streams per credential"},
		{[]string{"--max-paused-streams", "0"}, "paused streams must be positive"},
		{[]string{"--max-paused-streams-per-credential", "0"}, "paused streams must be positive"},
		{[]string{"--read-rate", "5", "--read-burst", "0"}, "read rate needs a positive burst"},
		{[]string{"--read-byte-rate", "5", "--read-byte-burst", "0"}, "read byte rate needs a positive burst"},
		{[]string{"--read-byte-rate", "-1"}, "read byte rate needs a positive burst"},
		{[]string{"--publish-rate", "1e-10"}, "publish rate: auth: rate limit must be a finite number a second, at least one a day"},
		{[]string{"--credential-command-rate", "5", "--credential-command-burst", "0"}, "credential command rate needs a positive burst"},
		{[]string{"--gc-headroom", "-1"}, "--gc-headroom must not be negative"},
		{[]string{"--stream-window", "1000"}, "stream window must be 0 (dynamic) or 65536 to"},
		{[]string{"--stream-window", "1048576", "--conn-window", "65536"}, "connection window must be from the stream window (1048576)"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, tc.args...)
		code, stdout, stderr := runCmd(ctx, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, serveCmd.helpPointer()) {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", tc.args, code, stdout, stderr, tc.says)
		}
	}
}

// Limits set by flags reach the server.
func TestServeLimitFlags(t *testing.T) {
	ctx := testCtx(t)
	rooms := dialPlaintext(t, startServe(t, "--max-rooms", "2").addr)
	for _, room := range []string{"a", "b"} {
		if _, err := publish(ctx, rooms, room, "x"); err != nil {
			t.Fatalf("publish to %s: %v", room, err)
		}
	}
	if _, err := publish(ctx, rooms, "c", "x"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("publish to a third room with --max-rooms 2: %v, want ResourceExhausted", err)
	}

	rate := dialPlaintext(t, startServe(t, "--publish-rate", "0.001", "--publish-burst", "2").addr)
	for range 2 {
		if _, err := publish(ctx, rate, "a", "x"); err != nil {
			t.Fatalf("publish within the burst: %v", err)
		}
	}
	_, err := publish(ctx, rate, "a", "x")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || len(st.Details()) == 0 {
		t.Errorf("publish past --publish-burst: %v, want ResourceExhausted with RetryInfo", err)
	}

	// --allow-anonymous without credentials: every caller is anonymous, and
	// --publish-rate, not --anonymous-publish-rate, is theirs.
	open := dialPlaintext(t, startServe(t, "--allow-anonymous", "--anonymous-publish", ">", "--anonymous-publish-rate", "0.001", "--anonymous-publish-burst", "1").addr)
	for range 3 {
		if _, err := publish(ctx, open, "a", "x"); err != nil {
			t.Fatalf("publish with --allow-anonymous alone: %v, want --publish-rate's limit", err)
		}
	}

	unlimited := dialPlaintext(t, startServe(t, "--publish-rate", "0", "--publish-burst", "0", "--command-rate", "0",
		"--history-messages", "0", "--max-streams", "1", "--max-streams-per-connection", "1", "--write-timeout", "1s").addr)
	for range 10 {
		if _, err := publish(ctx, unlimited, "a", "x"); err != nil {
			t.Fatalf("publish with --publish-rate 0: %v", err)
		}
	}
}
