package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// dialFrom is dial from the local address ip, so that the server sees
// another client address; the test is skipped where ip cannot be bound
// (Linux routes all of 127.0.0.0/8 to loopback, other systems may not).
func dialFrom(t testing.TB, ip, addr string) roomcastv1.BrokerServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot use %s as a local address: %v", ip, err)
	}
	lis.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return roomcastv1.NewBrokerServiceClient(conn)
}

// publishNaming publishes to room naming session as its own and as the one
// to exclude, and returns the two calls' codes.
func publishNaming(ctx context.Context, c roomcastv1.BrokerServiceClient, room, session string) (asOwn, asExcluded codes.Code) {
	_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, SessionId: session})
	asOwn = status.Code(err)
	_, err = c.Publish(ctx, &roomcastv1.PublishRequest{Room: room, ExcludeSession: session})
	return asOwn, status.Code(err)
}

// session_id and exclude_session must name one of the caller's own live
// sessions: not another subject's (exclude_session could hide a message
// from anyone's stream), and not one that has ended.
func TestPublishNamesOnlyItsOwnLiveSessions(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	later := time.Now().Add(time.Hour)
	g := testjwt.Grants(t, "r", "r", "")
	alice, bob := bearer(ctx, testjwt.Token(t, "alice", later, g)), bearer(ctx, testjwt.Token(t, "bob", later, g))
	admin := g
	admin.Admin = true
	root := bearer(ctx, testjwt.Token(t, "root", later, admin))

	mine := subscribe(t, alice, c, "r")
	if own, ex := publishNaming(alice, c, "r", mine.session); own != codes.OK || ex != codes.OK {
		t.Errorf("naming its own session: %v, %v; want OK", own, ex)
	}
	if own, ex := publishNaming(bob, c, "r", mine.session); own != codes.PermissionDenied || ex != codes.PermissionDenied {
		t.Errorf("naming another subject's session: %v, %v; want PERMISSION_DENIED", own, ex)
	}
	if own, ex := publishNaming(root, c, "r", mine.session); own != codes.OK || ex != codes.OK {
		t.Errorf("an admin naming another subject's session: %v, %v; want OK", own, ex)
	}

	// A session that has ended names nothing, from the moment its client
	// has its status: one ended from outside its handler, here by its
	// credential's expiry, is forgotten before the status is written.
	soon := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	ended := subscribe(t, bearer(ctx, testjwt.Token(t, "alice", soon, g)), c, "r")
	ended.expectEnd(codes.Unauthenticated)
	if own, ex := publishNaming(alice, c, "r", ended.session); own != codes.PermissionDenied || ex != codes.PermissionDenied {
		t.Errorf("naming its own ended session: %v, %v; want PERMISSION_DENIED", own, ex)
	}
	if own, ex := publishNaming(root, c, "r", ended.session); own != codes.PermissionDenied || ex != codes.PermissionDenied {
		t.Errorf("an admin naming an ended session: %v, %v; want PERMISSION_DENIED", own, ex)
	}
	// The messages published meanwhile excluded nobody but mine.
	if m := mine.next(); m.GetPublisherSession() != mine.session {
		t.Errorf("mine got %v first, want the message it published as itself", m)
	}
}

// Anonymous callers all have one subject, so their sessions belong to the
// client address that opened them: without an authenticator, and with
// anonymous access.
func TestAnonymousSessionsBelongToTheirAddress(t *testing.T) {
	_, open := start(t)
	a, err := auth.NewAuthenticator(auth.WithAnonymous(testjwt.Grants(t, "r", "r", "")))
	if err != nil {
		t.Fatal(err)
	}
	_, anon := start(t, server.WithAuthenticator(a))
	for name, addr := range map[string]string{"no authenticator": open, "anonymous access": anon} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			here, there := dial(t, addr), dialFrom(t, "127.0.0.2", addr)
			sub := subscribe(t, ctx, here, "r")
			if own, ex := publishNaming(ctx, here, "r", sub.session); own != codes.OK || ex != codes.OK {
				t.Errorf("from the session's address: %v, %v; want OK", own, ex)
			}
			if own, ex := publishNaming(ctx, there, "r", sub.session); own != codes.PermissionDenied || ex != codes.PermissionDenied {
				t.Errorf("from another address: %v, %v; want PERMISSION_DENIED", own, ex)
			}
			if own, ex := publishNaming(ctx, here, "r", "NOSUCHSESSION"); own != codes.PermissionDenied || ex != codes.PermissionDenied {
				t.Errorf("naming no session: %v, %v; want PERMISSION_DENIED", own, ex)
			}
		})
	}
}
