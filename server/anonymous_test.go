package server_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// Anonymous callers share no bucket: each client address has its own, on a
// server without credentials and with --allow-anonymous alike, so one
// anonymous client's burst does not refuse all the others.
func TestAnonymousCallersAreLimitedPerClientAddress(t *testing.T) {
	for _, tc := range anonymousModes(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, append(tc.opts, server.WithPublishRate(0.001, 1), server.WithAnonymousPublishRate(0.001, 1))...)
			ctx := testCtx(t)
			first, second := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.2", addr)
			publishText(t, ctx, first, "r", "the whole burst")
			if _, err := first.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("a publish past the burst: %v, want RESOURCE_EXHAUSTED", err)
			}
			if _, err := second.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
				t.Errorf("another client's first publish: %v", err)
			}
		})
	}
}

// An IPv6 client is known by its /64: it may pick any address in it.
func TestClientKeys(t *testing.T) {
	for _, tc := range []struct{ addr, key string }{
		{"127.0.0.2:5000", "127.0.0.2"},
		{"[::ffff:10.1.2.3]:5000", "10.1.2.3"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:6000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:6000", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:5000", "fe80::/64"},
		{"[::1]:5000", "::/64"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := server.ClientKey(addr); got != tc.key {
			t.Errorf("ClientKey(%s) = %q, want %q", tc.addr, got, tc.key)
		}
	}
	if got := server.ClientKey(&net.UnixAddr{Name: "/run/roomcast.sock", Net: "unix"}); got != "/run/roomcast.sock" {
		t.Errorf("ClientKey of a Unix socket: %q", got)
	}
}

// A client's address is logged as net.TCPAddr.String has it.
func TestPeerAddrs(t *testing.T) {
	for _, a := range []string{"127.0.0.1:5000", "[::ffff:10.1.2.3]:9", "[::1]:80", "[2001:db8::1]:443", "[fe80::1%eth0]:5000"} {
		addr, err := net.ResolveTCPAddr("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
		if got := server.PeerAddr(ctx); got != addr.String() {
			t.Errorf("PeerAddr(%s) = %q, want %q", a, got, addr.String())
		}
	}
}

// Anonymous callers of a server that authenticates others have a publish
// rate of their own (--anonymous-publish-rate), which leaves credentials'
// publishes alone; on a server without credentials, where every caller is
// anonymous, the publish rate applies to all.
func TestAnonymousPublishRate(t *testing.T) {
	authn := anonymousAuthenticator(t)
	rates := []server.Option{server.WithPublishRate(1000, 1000), server.WithAnonymousPublishRate(0.001, 1)}
	t.Run("with credentials", func(t *testing.T) {
		_, addr := start(t, append(rates, server.WithAuthenticator(authn))...)
		ctx := testCtx(t)
		c := dial(t, addr)
		publishText(t, ctx, c, "r", "the anonymous burst")
		_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"})
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "anonymous") {
			t.Fatalf("an anonymous publish past its burst: %v, want RESOURCE_EXHAUSTED naming anonymous callers", err)
		}
		if retryInfo(t, err) == nil {
			t.Error("the refusal has no RetryInfo")
		}
		tok := bearer(ctx, testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, ">", "", "")))
		for i := range 5 {
			if _, err := c.Publish(tok, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
				t.Fatalf("a credential's publish %d: %v", i, err)
			}
		}
	})
	t.Run("on a PublishStream", func(t *testing.T) {
		_, addr := start(t, append(rates, server.WithAuthenticator(authn))...)
		ctx := testCtx(t)
		stream := openPublishStream(t, ctx, dial(t, addr))
		req := textReq("a", "r", "x")
		req.Batch = []*roomcastv1.PublishStreamItem{{Id: "b", Publish: req.Publish}}
		got := answers(sendRecv(t, stream, req))
		if len(got) != 2 || got[0].ok == nil || got[1].code != codes.ResourceExhausted || !strings.Contains(got[1].err.GetMessage(), "anonymous") {
			t.Fatalf("an anonymous batch of two with a burst of one: %+v, want the second refused as anonymous", got)
		}
	})
	t.Run("never above the publish rate", func(t *testing.T) {
		_, addr := start(t, server.WithAuthenticator(authn), server.WithPublishRate(0.001, 1), server.WithAnonymousPublishRate(1000, 1000))
		ctx := testCtx(t)
		c := dial(t, addr)
		publishText(t, ctx, c, "r", "the burst")
		if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("an anonymous publish past --publish-rate's burst: %v, want RESOURCE_EXHAUSTED", err)
		}
	})
	t.Run("open server", func(t *testing.T) {
		_, addr := start(t, rates...)
		ctx := testCtx(t)
		c := dial(t, addr)
		for i := range 5 {
			if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}); err != nil {
				t.Fatalf("publish %d on a server without credentials: %v", i, err)
			}
		}
	})
}

// anonymousAuthenticator takes testjwt's tokens and admits callers
// without one as anonymous, allowed everything.
func anonymousAuthenticator(t *testing.T) *auth.Authenticator {
	t.Helper()
	v, err := auth.NewJWTVerifier(auth.WithHMACSecret(testjwt.Secret, ""), auth.WithIssuer(testjwt.Issuer), auth.WithAudience(testjwt.Audience))
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.WithJWT(v), auth.WithAnonymous(testjwt.Grants(t, ">", ">", ">")))
	if err != nil {
		t.Fatal(err)
	}
	return authn
}

// retryInfo is the RetryInfo detail of err's status, or nil.
func retryInfo(t testing.TB, err error) *errdetails.RetryInfo {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			return r
		}
	}
	return nil
}

// Anonymous callers' PublishStream streams are counted per client address
// too, in an open server and with anonymous access alike.
func TestAnonymousPublishStreamsAreLimitedPerClientAddress(t *testing.T) {
	for _, tc := range anonymousModes(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, append(tc.opts, server.WithMaxPublishStreamsPerCredential(1))...)
			ctx := testCtx(t)
			open := func(c roomcastv1.BrokerServiceClient) error {
				stream, err := c.PublishStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := stream.Send(textReq("1", "r", "x")); err != nil && err != io.EOF {
					t.Fatal(err)
				}
				_, err = stream.Recv()
				return err
			}
			if err := open(dialFrom(t, "127.0.0.1", addr)); err != nil {
				t.Fatal(err)
			}
			if err := open(dialFrom(t, "127.0.0.1", addr)); status.Code(err) != codes.ResourceExhausted {
				t.Errorf("a second stream from the address: %v, want RESOURCE_EXHAUSTED", err)
			}
			if err := open(dialFrom(t, "127.0.0.2", addr)); err != nil {
				t.Errorf("another address's stream: %v", err)
			}
		})
	}
}

// anonymousMode is a server's options for anonymous callers.
type anonymousMode struct {
	name string
	opts []server.Option
}

// anonymousModes are the two ways a server serves anonymous callers: open
// (no authenticator), and anonymous access beside credentials.
func anonymousModes(t *testing.T) []anonymousMode {
	anon, err := auth.NewAuthenticator(auth.WithAnonymous(testjwt.Grants(t, ">", ">", ">")))
	if err != nil {
		t.Fatal(err)
	}
	return []anonymousMode{
		{"open server", nil},
		{"anonymous access", []server.Option{server.WithAuthenticator(anon)}},
	}
}
