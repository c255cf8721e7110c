package server_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// A credential may hold only so many Subscribe streams open, over all its
// connections; another credential has its own count, and a stream that ends
// gives its place back.
func TestSubscribeStreamsAreLimitedPerCredential(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithMaxStreamsPerCredential(2))
	a, b := twoCredentials(t, testjwt.Grants(t, "", ">", ""))
	subscribe(t, a, dial(t, addr))
	second := subscribe(t, a, dial(t, addr))

	third, err := dial(t, addr).Subscribe(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := third.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "2 Subscribe streams open") {
		t.Errorf("a third stream of two allowed: %v, want RESOURCE_EXHAUSTED", err)
	}
	subscribe(t, b, dial(t, addr))

	// The server ends second (its command is over the size limit), and so
	// has let its place go before the client hears of it.
	if err := second.stream.Send(infoJoin("big", "r", map[string]string{"k": strings.Repeat("v", 20<<10)})); err != nil {
		t.Fatal(err)
	}
	second.expectEnd(codes.ResourceExhausted)
	subscribe(t, a, dial(t, addr))
}

// A stream past the limit is refused in the tap, before a handler starts
// for it: a client that opens streams in a loop costs the server their
// headers only. An interceptor of the test's own counts the streams
// started (Subscribe is in no grpc_server_* metric: see metricsStreams).
func TestStreamsPastTheLimitStartNoHandler(t *testing.T) {
	var started atomic.Int64
	count := grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		started.Add(1)
		return handler(srv, ss)
	})
	reg := prometheus.NewRegistry()
	addr := testjwt.StartServer(t, server.WithMaxStreamsPerCredential(1), server.WithGRPCOptions(count), server.WithMetrics(reg))
	ctx := testCtx(t)
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, "", ">", "")))
	c := dial(t, addr)
	subscribe(t, a, c)
	before := started.Load()
	if before != 1 {
		t.Fatalf("%d streams started, want the first one", before)
	}

	for range 5 {
		s, err := c.Subscribe(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a stream past the limit: %v, want RESOURCE_EXHAUSTED", err)
		}
	}
	if n := started.Load(); n != before {
		t.Errorf("the server started %v handlers for streams past the limit, want none", n-before)
	}
	// The test's interceptor runs after the server's own, whose second check
	// of the limit would refuse these too: the tap must have refused them.
	if n := refusedCount(t, reg, roomcastv1.BrokerService_Subscribe_FullMethodName, "stream_limit"); n != 5 {
		t.Errorf("%v streams refused by the tap for the stream limit, want 5", n)
	}
}

// History and Presence calls share a rate per credential, refused with
// RetryInfo past it; another credential has its own.
func TestReadsAreRateLimitedPerCredential(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithReadRate(0.001, 3))
	ctx := testCtx(t)
	c := dial(t, addr)
	g := testjwt.Grants(t, "", ">", ">")
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g))
	b := bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	for i := range 3 {
		var err error
		if i%2 == 0 {
			_, err = c.History(a, &roomcastv1.HistoryRequest{Room: "r"})
		} else {
			_, err = c.Presence(a, &roomcastv1.PresenceRequest{Room: "r"})
		}
		if err != nil {
			t.Fatalf("read %d within the burst: %v", i, err)
		}
	}
	for name, err := range map[string]error{
		"history":  func() error { _, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r"}); return err }(),
		"presence": func() error { _, err := c.Presence(a, &roomcastv1.PresenceRequest{Room: "r"}); return err }(),
	} {
		st := status.Convert(err)
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "History and Presence") || retry.GetRetryDelay().AsDuration() <= 0 {
			t.Errorf("%s past the burst: %v with details %v, want RESOURCE_EXHAUSTED with a RetryInfo", name, err, st.Details())
		}
	}
	if _, err := c.History(b, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
		t.Errorf("another credential's history: %v", err)
	}
}

// Commands are limited per credential over all its streams, beside the
// limit per stream: one credential's second stream does not get a rate of
// its own. The stream stays up, and another credential has its own rate.
func TestCommandsAreRateLimitedPerCredential(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithCommandRate(0, 0), server.WithCredentialCommandRate(0.001, 3))
	ctx := testCtx(t)
	g := testjwt.Grants(t, "", ">", "")
	a := bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g))
	b := bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	first := subscribe(t, a, dial(t, addr), "r1", "r2") // two commands
	second := subscribe(t, a, dial(t, addr), "r3")      // the third
	rep := second.command(joinReq("r4", "r4", nil))
	if codes.Code(rep.GetError().GetCode()) != codes.ResourceExhausted || !strings.Contains(rep.GetError().GetMessage(), "over all its streams") {
		t.Errorf("a fourth command of the credential, on another stream: %v, want RESOURCE_EXHAUSTED", rep)
	}
	if rep := first.command(joinReq("r5", "r5", nil)); codes.Code(rep.GetError().GetCode()) != codes.ResourceExhausted {
		t.Errorf("a fifth command: %v, want RESOURCE_EXHAUSTED", rep)
	}
	subscribe(t, b, dial(t, addr), "r1", "r2", "r3")
}

// A credential may hold only so many PublishStream streams open too: each
// may hold a receive window of publishes the server has not read, so the
// count bounds that memory. Another credential has its own count, and a
// stream that ends gives its place back.
func TestPublishStreamsAreLimitedPerCredential(t *testing.T) {
	addr := testjwt.StartServer(t, server.WithMaxPublishStreamsPerCredential(2))
	a, b := twoCredentials(t, testjwt.Grants(t, ">", "", ""))
	open := func(ctx context.Context) (roomcastv1.BrokerService_PublishStreamClient, error) {
		stream, err := dial(t, addr).PublishStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(textReq("1", "r", "x")); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err == nil && resp.GetOk() == nil {
			t.Fatalf("a publish on an admitted stream: %v, want it accepted", resp)
		}
		return stream, err
	}
	firstCtx, closeFirst := context.WithCancel(a)
	defer closeFirst()
	if _, err := open(firstCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := open(a); err != nil {
		t.Fatal(err)
	}
	if _, err := open(a); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "2 PublishStream streams open") {
		t.Errorf("a third stream of two allowed: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := open(b); err != nil {
		t.Errorf("another credential's stream: %v", err)
	}
	closeFirst()
	for deadline := time.Now().Add(10 * time.Second); ; { // the handler gives the place back as it returns
		_, err := open(a)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a stream after one of two ended: %v", err)
		}
	}
}

// twoCredentials returns the contexts of two credentials, subjects a and b,
// with grants g, for the test's lifetime.
func twoCredentials(t *testing.T, g auth.Grants) (a, b context.Context) {
	ctx := testCtx(t)
	a = bearer(ctx, testjwt.Token(t, "a", time.Now().Add(time.Hour), g))
	b = bearer(ctx, testjwt.Token(t, "b", time.Now().Add(time.Hour), g))
	return a, b
}
