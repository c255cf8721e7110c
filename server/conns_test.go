package server_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// within returns a context for waiting on something that should happen in
// well under d.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(testCtx(t), d)
	t.Cleanup(cancel)
	return ctx
}

// rawPublish makes a Publish call to room on c, with the given metadata,
// and returns its grpc-status ("" if the call got none).
func rawPublish(t testing.TB, ctx context.Context, c *rawh2.Conn, room string, md []hpack.HeaderField) string {
	t.Helper()
	body, err := proto.Marshal(&roomcastv1.PublishRequest{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	id, err := rawCall(c, roomcastv1.BrokerService_Publish_FullMethodName, md, false)
	if err == nil {
		err = rawRequest(c, id, body)
	}
	if err != nil {
		return ""
	}
	end, _ := c.WaitStream(ctx, id)
	return end.Status
}

// closedWithin reports whether the server closes c within d: it reads what
// the server sends until the connection ends or d passes.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// A connection past the cap is closed at once; one that closes frees its
// place.
func TestConnectionsPastTheCapAreRefused(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithMaxConnections(2), server.WithMetrics(reg))
	ctx := testCtx(t)
	first := dialRaw(t, addr)
	dialRaw(t, addr)
	if status := rawPublish(t, ctx, first, "r", nil); status != "0" {
		t.Fatalf("a call on a connection within the cap: status %q", status)
	}
	third, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !closedWithin(third, 3*time.Second) {
		t.Error("the third connection of two allowed is still open")
	}
	if n := counter(t, reg, "roomcast_connections_refused_total"); n != 1 {
		t.Errorf("roomcast_connections_refused_total is %v, want 1", n)
	}
	first.Close()
	// A gRPC client retries until the server has seen first go.
	if _, err := dial(t, addr).Publish(ctx, &roomcastv1.PublishRequest{Room: "r"}, grpc.WaitForReady(true)); err != nil {
		t.Errorf("publish once a place is free: %v", err)
	}
}

// With credentials, a connection that has made no authenticated call within
// the auth timeout is closed: one that never calls, one whose calls fail
// authentication, one that only checks health. One that made an
// authenticated call stays.
func TestConnectionsMustAuthenticateInTime(t *testing.T) {
	const timeout = time.Second // long enough for each connection to make its calls first
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithAuthTimeout(timeout), server.WithMetrics(reg))
	ctx := testCtx(t)
	tok := testjwt.Token(t, "svc", time.Now().Add(time.Hour), testjwt.Grants(t, "r", "", ""))
	authed := []hpack.HeaderField{{Name: "authorization", Value: "Bearer " + tok}}

	good := dialRaw(t, addr)
	if status := rawPublish(t, ctx, good, "r", authed); status != "0" {
		t.Fatalf("an authenticated call: status %q", status)
	}
	silent := dialRaw(t, addr)
	refused := dialRaw(t, addr)
	if status := rawPublish(t, ctx, refused, "r", []hpack.HeaderField{{Name: "authorization", Value: "Bearer nope"}}); status != "16" {
		t.Fatalf("a call with a bad credential: status %q", status)
	}
	health := dialRaw(t, addr)
	id, err := rawCall(health, "/grpc.health.v1.Health/Check", nil, false)
	if err == nil {
		err = rawRequest(health, id, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := health.WaitStream(ctx, id); end.Status != "0" {
		t.Fatalf("a health check: %+v", end)
	}

	for name, c := range map[string]*rawh2.Conn{"silent": silent, "refused": refused, "health": health} {
		if closed, _ := closedBy(within(t, 10*timeout), c); !closed {
			t.Errorf("the %s connection is open after the auth timeout", name)
		}
	}
	if n := counter(t, reg, "roomcast_connections_auth_timeouts_total"); n != 3 {
		t.Errorf("roomcast_connections_auth_timeouts_total is %v, want 3", n)
	}
	// good's timeout passed before the others': it would be gone by now.
	if status := rawPublish(t, ctx, good, "r", authed); status != "0" {
		t.Errorf("a second call on the authenticated connection: status %q", status)
	}
}

// A connection with no call in flight for the idle time is sent a GOAWAY
// and closed: its client leaves the READY state.
func TestIdleConnectionsAreClosed(t *testing.T) {
	_, addr := start(t, server.WithMaxConnectionIdle(300*time.Millisecond))
	conn := servertest.Dial(t, addr)
	if _, err := roomcastv1.NewBrokerServiceClient(conn).Publish(testCtx(t), &roomcastv1.PublishRequest{Room: "r"}); err != nil {
		t.Fatal(err)
	}
	if !conn.WaitForStateChange(within(t, 5*time.Second), connectivity.Ready) {
		t.Errorf("an idle connection is still %v", conn.GetState())
	}
}
