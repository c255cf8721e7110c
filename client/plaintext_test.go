package client_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
)

// A bearer token goes over plaintext only to this machine, unless the
// client is told that the network is trusted.
func TestPlaintextTokenOnlyToLoopback(t *testing.T) {
	tok := client.WithBearerToken("rck_x_y")
	source := client.WithTokenSource(func(context.Context) (string, error) { return "t", nil })
	for _, tc := range []struct {
		name   string
		target string
		opts   []client.Option
		refuse bool
	}{
		{"a token to a LAN address", "10.0.0.1:50051", []client.Option{tok}, true},
		{"a token source to a name", "dns:///roomcast.example.com:50051", []client.Option{source}, true},
		{"a token to loopback", "127.0.0.1:50051", []client.Option{tok}, false},
		{"a token to localhost", "localhost:50051", []client.Option{tok}, false},
		{"a token to a Unix socket", "unix:///run/roomcast.sock", []client.Option{tok}, false},
		{"a token over TLS", "10.0.0.1:50051", []client.Option{tok, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12})}, false},
		{"a token, allowed", "10.0.0.1:50051", []client.Option{tok, client.WithInsecurePlaintextToken()}, false},
		{"no token", "10.0.0.1:50051", nil, false},
	} {
		c, err := client.Dial(tc.target, tc.opts...)
		switch {
		case tc.refuse && (err == nil || !strings.Contains(err.Error(), "refusing to send a bearer token in plaintext") || !strings.Contains(err.Error(), "WithInsecurePlaintextToken")):
			t.Errorf("%s: Dial(%q) = %v; want it refused, saying what to do", tc.name, tc.target, err)
		case !tc.refuse && err != nil:
			t.Errorf("%s: Dial(%q): %v", tc.name, tc.target, err)
		}
		if c != nil {
			c.Close()
		}
	}
}

// With WithInsecurePlaintextToken, the token does reach a server beyond
// loopback (here a name that a dialer leads to the test server).
func TestInsecurePlaintextTokenIsSent(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	var d net.Dialer
	toServer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) })
	target := "passthrough:///roomcast.example.com:50051"
	tok := client.WithBearerToken(testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "", "")))
	if _, err := client.Dial(target, tok, client.WithDialOptions(toServer)); err == nil {
		t.Fatal("Dial sent a token in plaintext beyond loopback")
	}
	c := dial(t, target, tok, client.WithInsecurePlaintextToken(), client.WithDialOptions(toServer))
	publishText(t, ctx, c, "r", "authenticated")
}
