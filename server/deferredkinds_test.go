package server_test

import (
	"bytes"
	"context"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// undecodable is a request of field 1 (every unary request's room) that
// holds invalid UTF-8: refused as malformed if anything decoded it.
var undecodable = []byte{0x0a, 0x04, 'c', 'a', 'f', 0xff}

// deferredKind is one kind of refusal the tap makes: the server it needs,
// what puts the caller past it, and a call it refuses.
type deferredKind struct {
	name   string
	authn  func(t *testing.T) *auth.Authenticator // the server's; nil: testjwt's. One returning nil: none
	opts   []server.Option
	method string
	reason string         // its roomcast_requests_refused_total reason
	says   string         // what its message says, if not only the reason
	line   *regexp.Regexp // its log line
	setup  func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context
	call   func(ctx context.Context, conn *grpc.ClientConn) error
	// spread: its refusals' RetryInfo is spread (publishadvice.go), so the
	// second refusal, the deferred one, may be told a later slot.
	spread bool
}

// credential returns ctx with a token of subject, allowed everything.
func credential(t *testing.T, ctx context.Context, subject string) context.Context {
	return bearer(ctx, testjwt.Token(t, subject, time.Now().Add(time.Hour), testjwt.Grants(t, ">", ">", ">")))
}

// rawUnary calls method with the undecodable request.
func rawUnary(method string) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		return conn.Invoke(ctx, method, undecodable, new([]byte), grpc.ForceCodecV2(rawCodec{}))
	}
}

// sentAnswer opens a stream of method, sends it the undecodable request,
// closes its side and returns what ends it: a server-streaming call reads
// its request before anything else.
func sentAnswer(method string) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
		s, err := conn.NewStream(ctx, desc, method, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			return err
		}
		_ = s.SendMsg(undecodable) // io.EOF if refused already: RecvMsg says why
		_ = s.CloseSend()
		for {
			if err := s.RecvMsg(new([]byte)); err != nil {
				return err
			}
		}
	}
}

// firstAnswer opens a stream of method and returns what ends it, without
// sending a request.
func firstAnswer(method string) func(context.Context, *grpc.ClientConn) error {
	return func(ctx context.Context, conn *grpc.ClientConn) error {
		desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
		s, err := conn.NewStream(ctx, desc, method, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			return err
		}
		return s.RecvMsg(new([]byte))
	}
}

func deferredKinds() []deferredKind {
	publish, stream := roomcastv1.BrokerService_Publish_FullMethodName, roomcastv1.BrokerService_PublishStream_FullMethodName
	subscribe, history := roomcastv1.BrokerService_Subscribe_FullMethodName, roomcastv1.BrokerService_History_FullMethodName
	presence, watch := roomcastv1.BrokerService_Presence_FullMethodName, roomcastv1.BrokerService_Watch_FullMethodName
	none := func(*testing.T) *auth.Authenticator { return nil }
	authFailed := regexp.MustCompile(`msg="authentication failed"`)
	anonymous := func(_ *testing.T, ctx context.Context, _ *grpc.ClientConn) context.Context { return ctx }
	big := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{1}, 2000)}}
	owing := func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
		a := credential(t, ctx, "a")
		if _, err := roomcastv1.NewBrokerServiceClient(conn).Publish(a, big); err != nil {
			t.Fatalf("a message over the burst, owing nothing: %v", err)
		}
		return a
	}
	published := func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
		publishTextCtx(t, ctx, roomcastv1.NewBrokerServiceClient(conn), "r", "the burst")
		return ctx
	}
	read := func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
		a := credential(t, ctx, "a")
		if _, err := roomcastv1.NewBrokerServiceClient(conn).Presence(a, &roomcastv1.PresenceRequest{Room: "r"}); err != nil {
			t.Fatalf("the read within the burst: %v", err)
		}
		return a
	}
	readOwing := func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
		a := credential(t, ctx, "a")
		c := roomcastv1.NewBrokerServiceClient(conn)
		publishTextCtx(t, a, c, "r", "an answer of more than the burst")
		if _, err := c.History(a, &roomcastv1.HistoryRequest{Room: "r"}); err != nil {
			t.Fatalf("an answer over the burst, owing nothing: %v", err)
		}
		return a
	}
	subscribed := func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
		subscribeOn(t, ctx, roomcastv1.NewBrokerServiceClient(conn))
		return ctx
	}
	withCredential := func(setup func(*testing.T, context.Context, *grpc.ClientConn) context.Context) func(*testing.T, context.Context, *grpc.ClientConn) context.Context {
		return func(t *testing.T, ctx context.Context, conn *grpc.ClientConn) context.Context {
			return setup(t, credential(t, ctx, "a"), conn)
		}
	}
	return []deferredKind{
		{name: "unauthenticated Publish", method: publish, reason: "unauthenticated", line: authFailed, setup: anonymous, call: rawUnary(publish)},
		{name: "unauthenticated Subscribe", method: subscribe, reason: "unauthenticated", line: authFailed, setup: anonymous, call: firstAnswer(subscribe)},
		{
			name: "unauthenticated admin call", method: roomcastv1.AdminService_GetRoom_FullMethodName, reason: "unauthenticated", line: authFailed,
			setup: anonymous, call: rawUnary(roomcastv1.AdminService_GetRoom_FullMethodName),
		},
		{
			name: "Subscribe past the credential's streams", opts: []server.Option{server.WithMaxStreamsPerCredential(1)},
			method: subscribe, reason: "stream_limit", line: refusedLine(subscribe, "stream_limit"),
			setup: withCredential(subscribed), call: firstAnswer(subscribe),
		},
		{
			name: "Watch past the credential's streams", opts: []server.Option{server.WithMaxStreamsPerCredential(1)},
			method: watch, reason: "stream_limit", line: refusedLine(watch, "stream_limit"),
			setup: withCredential(subscribed), call: sentAnswer(watch),
		},
		{
			name: "Subscribe past the address's streams, without an authenticator", authn: none, opts: []server.Option{server.WithMaxStreamsPerCredential(1)},
			method: subscribe, reason: "stream_limit", line: refusedLine(subscribe, "stream_limit"),
			setup: subscribed, call: firstAnswer(subscribe),
		},
		{
			name: "Publish owing bytes", opts: []server.Option{server.WithPublishByteRate(1, 1000)},
			method: publish, reason: "publish_bytes_owed", line: refusedLine(publish, "publish_bytes_owed"), setup: owing, call: rawUnary(publish),
			spread: true,
		},
		{
			name: "PublishStream owing bytes", opts: []server.Option{server.WithPublishByteRate(1, 1000)},
			method: stream, reason: "publish_bytes_owed", line: refusedLine(stream, "publish_bytes_owed"), setup: owing, call: firstAnswer(stream),
		},
		{
			name: "Publish past the publish rate", opts: []server.Option{server.WithPublishRate(0.001, 1)},
			method: publish, reason: "publish_rate", line: refusedLine(publish, "publish_rate"), setup: withCredential(published), call: rawUnary(publish),
		},
		{
			name: "Publish past the address's publish rate, without an authenticator", authn: none, opts: []server.Option{server.WithPublishRate(0.001, 1)},
			method: publish, reason: "publish_rate", line: refusedLine(publish, "publish_rate"), setup: published, call: rawUnary(publish),
		},
		{
			name: "anonymous Publish past the anonymous publish rate", authn: anonymousAuthenticator,
			opts:   []server.Option{server.WithPublishRate(1000, 1000), server.WithAnonymousPublishRate(0.001, 1)},
			method: publish, reason: "publish_rate", says: "anonymous callers", line: refusedLine(publish, "publish_rate"), setup: published, call: rawUnary(publish),
		},
		{
			name: "History past the read rate", opts: []server.Option{server.WithReadRate(0.001, 1)},
			method: history, reason: "read_rate", line: refusedLine(history, "read_rate"), setup: read, call: rawUnary(history),
		},
		{
			name: "Presence past the read rate", opts: []server.Option{server.WithReadRate(0.001, 1)},
			method: presence, reason: "read_rate", line: refusedLine(presence, "read_rate"), setup: read, call: rawUnary(presence),
		},
		{
			name: "History owing bytes", opts: []server.Option{server.WithReadByteRate(1, 10)},
			method: history, reason: "read_bytes_owed", line: refusedLine(history, "read_bytes_owed"), setup: readOwing, call: rawUnary(history),
		},
		{
			name: "Presence owing bytes", opts: []server.Option{server.WithReadByteRate(1, 10)},
			method: presence, reason: "read_bytes_owed", line: refusedLine(presence, "read_bytes_owed"), setup: readOwing, call: rawUnary(presence),
		},
	}
}

// subscribeOn opens a Subscribe stream with ctx and waits for its session.
func subscribeOn(t *testing.T, ctx context.Context, c roomcastv1.BrokerServiceClient) {
	t.Helper()
	s, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("the stream within the limit: %v", err)
	}
}

// A call the tap refuses with a far deadline is refused by the server's
// own code instead, so that grpc-go cancels its context (see
// TestCallsRefusedWithFarDeadlinesHoldNoMemory); for each kind of refusal,
// it gets the answer the tap gives a call without a deadline (code,
// message, details), is counted and logged once, as the tap's refusal is,
// starts no interceptor and decodes no request. Without metrics (serve
// without --metrics-listen) another interceptor is the first, which must
// refuse it as the metrics' does.
func TestDeferredRefusalsAnswerAsTheTap(t *testing.T) {
	for _, metrics := range []bool{true, false} {
		name := "metrics"
		if !metrics {
			name = "no metrics"
		}
		t.Run(name, func(t *testing.T) {
			for _, k := range deferredKinds() {
				t.Run(k.name, func(t *testing.T) { checkDeferredKind(t, k, metrics) })
			}
		})
	}
}

// withoutDeadline is ctx without its deadline, but ended as ctx ends: a
// call that is not refused does not outlive the test.
func withoutDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	return c, func() { stop(); cancel() }
}

// closedForRefusals is the log line of a connection closed for its
// refused calls.
var closedForRefusals = regexp.MustCompile(`msg="closed a connection whose calls kept being refused`)

// checkDeferredKind makes k's call without a deadline, refused in the tap,
// then with a far one, deferred, on a server with metrics or without, and
// fails t unless both are refused alike and once each.
func checkDeferredKind(t *testing.T, k deferredKind, metrics bool) {
	var logs logBuffer
	var ran atomic.Int64 // the test's interceptors, which follow the server's
	count := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ran.Add(1)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ran.Add(1)
			return h(srv, ss)
		}),
	}
	opts := []server.Option{logTo(&logs), server.WithGRPCOptions(count...),
		server.WithMaxRefusedCalls(2)} // a third refused call, were one counted twice, would close the connection
	authn := testjwt.Authenticator(t)
	if k.authn != nil {
		authn = k.authn(t)
	}
	if authn != nil {
		opts = append(opts, server.WithAuthenticator(authn))
	}
	var reg *prometheus.Registry
	if metrics {
		reg = prometheus.NewRegistry()
		opts = append(opts, server.WithMetrics(reg))
	}
	s, addr := start(t, append(opts, k.opts...)...)
	conn := servertest.Dial(t, addr)
	ctx := k.setup(t, testCtx(t), conn)
	ran.Store(0)
	var started float64
	if reg != nil {
		started = startedCount(t, reg, k.method)
	}

	none, cancel := withoutDeadline(ctx) // the test's context has a deadline
	defer cancel()
	tapErr := k.call(none, conn)
	if n := server.DeferredRefusals(s); n != 0 {
		t.Fatalf("a call without a deadline: %d refusals deferred, want it refused in the tap", n)
	}
	far, cancelFar := context.WithTimeout(none, 1000*time.Hour)
	defer cancelFar()
	deferredErr := k.call(far, conn)
	if n := server.DeferredRefusals(s); n != 1 {
		t.Fatalf("a call with a 1000-hour deadline: %d refusals deferred, want 1", n)
	}

	sameRefusal(t, tapErr, deferredErr, k.spread)
	if !strings.Contains(status.Convert(tapErr).Message(), k.says) {
		t.Errorf("refused with %v, want it to say %q", tapErr, k.says)
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("%d calls reached the interceptors after the server's, want none", n)
	}
	if got := logs.lines(k.line); len(got) != 2 {
		t.Errorf("logged %d lines of the refusal, want 2: %q", len(got), got)
	}
	if got := logs.lines(refusedLine(k.method, "malformed")); len(got) != 0 {
		t.Errorf("logged %q: a refused call's request must not be decoded", got)
	}
	if got := logs.lines(closedForRefusals); len(got) != 0 {
		t.Errorf("logged %q: each refusal must count once toward --max-refused-calls", got)
	}
	if reg == nil {
		return
	}
	if n := startedCount(t, reg, k.method); n != started {
		t.Errorf("grpc_server_started_total went from %v to %v, want no call counted", started, n)
	}
	if n := refusedCount(t, reg, k.method, k.reason); n != 2 {
		t.Errorf("roomcast_requests_refused_total{reason=%q} = %v, want 2: each refusal counted once", k.reason, n)
	}
	if n := refusedCount(t, reg, k.method, "malformed"); n != 0 {
		t.Errorf("%v undecodable requests refused: a refused call's request must not be decoded", n)
	}
	if n := counterOf(t, reg, "roomcast_connections_refusal_closes_total", nil); n != 0 {
		t.Errorf("%v connections closed for their refused calls: each refusal must count once toward --max-refused-calls", n)
	}
}

// startedCount is grpc_server_started_total of fullMethod in reg.
func startedCount(t *testing.T, reg *prometheus.Registry, fullMethod string) float64 {
	t.Helper()
	service, method := path.Split(strings.TrimPrefix(fullMethod, "/"))
	return counterOf(t, reg, "grpc_server_started_total", map[string]string{"grpc_service": strings.TrimSuffix(service, "/"), "grpc_method": method})
}

// sameRefusal fails t unless deferred is the refusal tap is: code and
// message (but for the numbers of a retry delay), and details, a retry
// delay within a minute of tap's, or, with spread, later.
func sameRefusal(t *testing.T, tap, deferred error, spread bool) {
	t.Helper()
	digits := regexp.MustCompile(`[0-9.]+(ms|s|m|h)?`)
	a, b := status.Convert(tap), status.Convert(deferred)
	if a.Code() != b.Code() || digits.ReplaceAllString(a.Message(), "N") != digits.ReplaceAllString(b.Message(), "N") || a.Code() == 0 {
		t.Fatalf("refused in the tap: %v; deferred: %v; want the same refusal", tap, deferred)
	}
	da, db := a.Details(), b.Details()
	if len(da) != len(db) {
		t.Fatalf("details %v in the tap, %v deferred", da, db)
	}
	for i := range da {
		ra, aok := da[i].(*errdetails.RetryInfo)
		rb, bok := db[i].(*errdetails.RetryInfo)
		if aok && bok {
			if d := ra.GetRetryDelay().AsDuration() - rb.GetRetryDelay().AsDuration(); d < -time.Minute && !spread || d > time.Minute {
				t.Errorf("retry delay %v in the tap, %v deferred", ra.GetRetryDelay().AsDuration(), rb.GetRetryDelay().AsDuration())
			}
			continue
		}
		pa, _ := da[i].(proto.Message)
		pb, _ := db[i].(proto.Message)
		if pa == nil || pb == nil || !proto.Equal(pa, pb) {
			t.Errorf("detail %v in the tap, %v deferred", da[i], db[i])
		}
	}
}
