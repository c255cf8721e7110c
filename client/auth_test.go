package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/internal/testsupport/testcert"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A token source's short-lived tokens keep a stream alive past the first
// one's expiry: the subscription refreshes the stream's credential.
func TestTokenRefreshKeepsStreamAlive(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	var (
		mu       sync.Mutex
		firstExp time.Time
		calls    int
	)
	src := func(context.Context) (string, error) {
		exp := time.Now().Add(3 * time.Second)
		mu.Lock()
		if calls++; calls == 1 {
			firstExp = exp
		}
		mu.Unlock()
		return testjwt.Token(t, "reader", exp, testjwt.Grants(t, "", "live", "")), nil
	}
	sub := subscribe(t, ctx, dial(t, addr, client.WithTokenSource(src)), "live")
	session := sub.SessionID()
	pub := dial(t, addr, client.WithBearerToken(testjwt.Token(t, "writer", time.Now().Add(time.Hour), testjwt.Grants(t, "live", "", ""))))

	mu.Lock()
	until := firstExp.Add(time.Second)
	mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := uint64(1); time.Now().Before(until); i++ {
		publishText(t, ctx, pub, "live", "x")
		if m := next(t, ctx, sub); m.GetOffset() != i {
			t.Fatalf("got offset %d, want %d", m.GetOffset(), i)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if err := sub.Err(); err != nil || sub.SessionID() != session {
		t.Errorf("Err() = %v, session %s then %s: want the same stream", err, session, sub.SessionID())
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 2 {
		t.Errorf("the token source was called %d times: no refresh", calls)
	}
}

// A fixed token cannot be refreshed: when it expires, the server ends the
// stream and the subscription ends with ErrUnauthenticated, without trying
// to reconnect.
func TestExpiredTokenEndsSubscription(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	tok := testjwt.Token(t, "reader", time.Now().Add(2*time.Second), testjwt.Grants(t, "", "r", ""))
	sub := subscribe(t, ctx, dial(t, addr, client.WithBearerToken(tok)), "r")
	var end error
	for ev, err := range sub.Events() {
		if err == nil {
			t.Fatalf("got %s, want the end", describe(ev))
		}
		end = err
	}
	if !errors.Is(end, client.ErrUnauthenticated) || status.Code(end) != codes.Unauthenticated {
		t.Errorf("ended with %v, want ErrUnauthenticated", end)
	}
	if err := sub.Err(); err != end {
		t.Errorf("Err() = %v, want %v", err, end)
	}
}

// A room refused on a reconnect (the credential lost its grant) ends the
// subscription with ErrPermissionDenied rather than dropping the room.
func TestRejoinRefusedEndsSubscription(t *testing.T) {
	addr := testjwt.StartServer(t)
	p := faultproxy.Start(t, addr)
	ctx := testCtx(t)
	var granted atomic.Bool
	granted.Store(true)
	src := func(context.Context) (string, error) {
		rooms := "elsewhere"
		if granted.Load() {
			rooms = "r,s"
		}
		return testjwt.Token(t, "reader", time.Now().Add(time.Hour), testjwt.Grants(t, "", rooms, "")), nil
	}
	sub := subscribe(t, ctx, dial(t, p.Addr(), client.WithTokenSource(src), fastBackoff), "s", "r")
	granted.Store(false)
	p.Sever()
	if ev := nextEvent(t, ctx, sub); ev.Disconnected == nil {
		t.Fatalf("got %s, want a disconnection", describe(ev))
	}
	_, err := sub.Next(ctx)
	if !errors.Is(err, client.ErrPermissionDenied) || status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `join "s"`) {
		t.Errorf("ended with %v, want ErrPermissionDenied for the first room", err)
	}
}

// A bad credential fails Subscribe and Publish with ErrUnauthenticated, a
// room outside the grants with ErrPermissionDenied.
func TestCredentialErrors(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	none := dial(t, addr)
	if _, err := none.Subscribe(ctx, "r"); !errors.Is(err, client.ErrUnauthenticated) || status.Code(err) != codes.Unauthenticated {
		t.Errorf("Subscribe without a credential: %v", err)
	}
	if _, err := none.PublishText(ctx, "r", "x"); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("Publish without a credential: %v", err)
	}
	c := dial(t, addr, client.WithBearerToken(testjwt.Token(t, "s", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "r", ""))))
	if _, err := c.Subscribe(ctx, "r", "other"); !errors.Is(err, client.ErrPermissionDenied) || status.Code(err) != codes.PermissionDenied {
		t.Errorf("Subscribe outside the grants: %v", err)
	}
	if _, err := c.PublishText(ctx, "other", "x"); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("Publish outside the grants: %v", err)
	}
	failing := dial(t, addr, client.WithTokenSource(func(context.Context) (string, error) { return "", errors.New("no token today") }))
	if _, err := failing.PublishText(ctx, "r", "x"); !errors.Is(err, client.ErrUnavailable) || !strings.Contains(err.Error(), "no token today") {
		t.Errorf("Publish with a failing token source: %v", err)
	}
	if _, err := failing.Subscribe(ctx, "r"); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Subscribe with a failing token source: %v", err)
	}
}

// Over TLS, the token goes with every call.
func TestTokenOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "roomcast test CA")
	cert, pool := ca.ServerCert(t), ca.Pool()
	addr := testjwt.StartServer(t, server.WithGRPCOptions(grpc.Creds(credentials.NewServerTLSFromCert(&cert))))
	ctx := testCtx(t)
	tok := testjwt.Token(t, "s", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "r", ""))
	c := dial(t, addr, client.WithTLS(&tls.Config{RootCAs: pool}), client.WithBearerToken(tok))
	sub := subscribe(t, ctx, c, "r")
	publishText(t, ctx, c, "r", "secret")
	if m := next(t, ctx, sub); m.GetText() != "secret" {
		t.Errorf("got %v", m)
	}
}

func TestPublishSentinels(t *testing.T) {
	_, addr := start(t, server.WithMaxMessageBytes(16), server.WithPublishRate(0.001, 4))
	ctx := testCtx(t)
	c := dial(t, addr)
	for _, tc := range []struct {
		name string
		call func() (uint64, error)
		is   error
		code codes.Code
	}{
		{"bad room", func() (uint64, error) { return c.PublishText(ctx, "a b", "x") }, client.ErrInvalidArgument, codes.InvalidArgument},
		{"bad text", func() (uint64, error) { return c.PublishText(ctx, "r", "\xff") }, client.ErrInvalidArgument, codes.InvalidArgument},
		{"too large", func() (uint64, error) { return c.Publish(ctx, "r", make([]byte, 17)) }, client.ErrTooLarge, codes.ResourceExhausted},
	} {
		if _, err := tc.call(); !errors.Is(err, tc.is) || status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want %v with code %v", tc.name, err, tc.is, tc.code)
		}
		if _, ok := client.RetryAfter(errors.New("plain")); ok {
			t.Errorf("RetryAfter of a plain error")
		}
	}
	// The bad room and the large message reached the server and took their
	// tokens (it takes a unary Publish's from its headers; the bad text
	// never left the client): 2 of the burst of 4 are left.
	for range 2 {
		publishText(t, ctx, c, "r", "x")
	}
	_, err := c.PublishText(ctx, "r", "x")
	wait, ok := client.RetryAfter(err)
	if !errors.Is(err, client.ErrRateLimited) || errors.Is(err, client.ErrTooLarge) || status.Code(err) != codes.ResourceExhausted || !ok || wait <= 0 {
		t.Errorf("past the rate: %v, retry after %v %v; want ErrRateLimited with a delay", err, wait, ok)
	}
}
