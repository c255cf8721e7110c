package server_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelcodes "go.opentelemetry.io/otel/codes"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
	"github.com/roomcast/roomcast/internal/testsupport/testjwt"
	"github.com/roomcast/roomcast/server"
)

// grpcTimeout is the grpc-timeout of a call that gives itself 1000 hours.
var grpcTimeout = hpack.HeaderField{Name: "grpc-timeout", Value: "1000H"}

// deadlineContexts is what the heap holds of the contexts grpc-go made with
// a deadline for calls' grpc-timeouts (in operateHeaders): the objects, and
// their bytes. The heap profile it reads is exact for what was allocated
// while runtime.MemProfileRate was 1, as of the last collection.
func deadlineContexts() (objects, bytes int64) {
	var records []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(records, true)
		if ok {
			records = records[:n]
			break
		}
		records = make([]runtime.MemProfileRecord, n+64)
	}
	for _, r := range records {
		var deadline, headers bool
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			deadline = deadline || f.Function == "context.WithDeadlineCause"
			headers = headers || strings.HasSuffix(f.Function, ").operateHeaders")
			if !more {
				break
			}
		}
		if deadline && headers {
			objects += r.InUseObjects()
			bytes += r.InUseBytes()
		}
	}
	return objects, bytes
}

// A call the tap refuses with a far deadline holds nothing once it is
// refused, not even until its connection closes. grpc-go makes a call's
// context, and its deadline's timer, before it calls the tap, and does not
// cancel it when the tap refuses the call: refused in the tap, each of
// these calls would hold its context and timer (about 270 bytes) for 1000
// hours, however soon its connection closed.
func TestCallsRefusedWithFarDeadlinesHoldNoMemory(t *testing.T) {
	addr := testjwt.StartServer(t)
	ctx := testCtx(t)
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1   // every allocation from here on is in the profile
	const conns, calls = 10, 100 // within what a connection may have refused a second without a pause
	for range conns {
		h := dialRaw(t, addr)
		ids := make([]uint32, calls)
		for i := range ids {
			method := roomcastv1.BrokerService_Publish_FullMethodName // a unary call and a stream, refused in different places
			if i%2 == 1 {
				method = roomcastv1.BrokerService_Subscribe_FullMethodName
			}
			id, err := rawCall(h, method, []hpack.HeaderField{grpcTimeout}, true)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = id
		}
		for _, id := range ids {
			if end, err := h.WaitStream(ctx, id); err != nil || end.Status != "16" {
				t.Fatalf("a call without a credential ended with %+v (%v), want UNAUTHENTICATED", end, err)
			}
		}
		h.Close()
	}
	// The profile may be two collections old; a few more give the
	// server's transports time to end, which here changes nothing.
	var objects, bytes int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		objects, bytes = deadlineContexts()
		if objects < conns*calls/10 || time.Now().After(deadline) {
			break
		}
	}
	if objects >= conns*calls/10 {
		t.Errorf("%d refused calls with a 1000-hour grpc-timeout, their connections closed, still hold %d objects (%d bytes, %d a call) of their deadlines' contexts", conns*calls, objects, bytes, bytes/(conns*calls))
	}
}

// A call to a method the server does not serve is refused as any other:
// with a far deadline by the server's own code, with the tap's refusal and
// its context cancelled (but for a malformed name, which the tap refuses). An authenticated one is answered UNIMPLEMENTED as
// grpc-go answers it, and no interceptor counts it: a client must not make
// up the metrics' method labels.
func TestUnknownMethodsAreRefusedAsOthers(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithMetrics(reg))
	tok := authorization(t)
	checkRawEnds(t, addr, []rawEnd{
		{"/roomcast.v1.BrokerService/Nope", nil, rawh2.StreamEnd{Status: "16"}},
		{"/roomcast.v1.BrokerService/Nope", []hpack.HeaderField{grpcTimeout}, rawh2.StreamEnd{Status: "16"}},
		{"/made.Up/Nope", []hpack.HeaderField{grpcTimeout}, rawh2.StreamEnd{Status: "16"}},
		{"made.Up/NoSlash", []hpack.HeaderField{grpcTimeout}, rawh2.StreamEnd{Status: "16"}}, // in the tap: deferred, grpc-go would call it malformed
		{"/roomcast.v1.BrokerService/Nope", []hpack.HeaderField{grpcTimeout, tok}, rawh2.StreamEnd{Status: "12", Message: "unknown method Nope for service roomcast.v1.BrokerService"}},
		{"/made.Up/Nope", []hpack.HeaderField{tok}, rawh2.StreamEnd{Status: "12", Message: "unknown service made.Up"}},
	})
	if n := server.DeferredRefusals(s); n != 2 {
		t.Errorf("%d refusals deferred, want the two with a deadline", n)
	}
	if n := counterOf(t, reg, "grpc_server_started_total", map[string]string{"grpc_method": "Nope"}); n != 0 {
		t.Errorf("grpc_server_started_total{grpc_method=Nope} = %v, want none", n)
	}
}

// A grpc.UnknownServiceHandler given by WithGRPCOptions, which override the
// server's own, answers the calls to methods the server does not serve,
// but for those the tap refused with a far deadline, with metrics (whose
// interceptor comes first) or without.
func TestUnknownMethodsGoToTheHandlerGiven(t *testing.T) {
	given := grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return status.Error(codes.NotFound, "not here") })
	tok := authorization(t)
	for name, metrics := range map[string]prometheus.Registerer{"metrics": prometheus.NewRegistry(), "no metrics": nil} {
		t.Run(name, func(t *testing.T) {
			opts := []server.Option{server.WithAuthenticator(testjwt.Authenticator(t)), server.WithGRPCOptions(given)}
			if metrics != nil {
				opts = append(opts, server.WithMetrics(metrics))
			}
			s, addr := start(t, opts...)
			checkRawEnds(t, addr, []rawEnd{
				{"/made.Up/Nope", []hpack.HeaderField{grpcTimeout}, rawh2.StreamEnd{Status: "16"}},
				{"/made.Up/Nope", []hpack.HeaderField{grpcTimeout, tok}, rawh2.StreamEnd{Status: "5", Message: "not here"}},
				{"/roomcast.v1.BrokerService/Nope", []hpack.HeaderField{tok}, rawh2.StreamEnd{Status: "5", Message: "not here"}},
			})
			if n := server.DeferredRefusals(s); n != 1 {
				t.Errorf("%d refusals deferred, want the unauthenticated one with a deadline", n)
			}
		})
	}
}

// authorization is the header of a testjwt token allowed everything.
func authorization(t *testing.T) hpack.HeaderField {
	return hpack.HeaderField{Name: "authorization", Value: "Bearer " + testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, ">", ">", ">"))}
}

// rawEnd is a call of a raw HTTP/2 connection: its method and extra header
// fields, and how the server should end it (its message only if given).
type rawEnd struct {
	method string
	extra  []hpack.HeaderField
	want   rawh2.StreamEnd
}

// checkRawEnds makes each call on a raw connection to addr and fails t
// unless the server ends it as the call wants.
func checkRawEnds(t *testing.T, addr string, calls []rawEnd) {
	t.Helper()
	ctx := testCtx(t)
	h := dialRaw(t, addr)
	for _, tc := range calls {
		id, err := rawCall(h, tc.method, tc.extra, true)
		if err != nil {
			t.Fatal(err)
		}
		end, err := h.WaitStream(ctx, id)
		if err != nil || end.Status != tc.want.Status || tc.want.Message != "" && end.Message != tc.want.Message {
			t.Errorf("%s with %d extra headers: ended with %+v (%v), want %+v", tc.method, len(tc.extra), end, err, tc.want)
		}
	}
}

// A deferred refusal comes after grpc-go's own check of the request's
// grpc-encoding, as docs/security.md says: a call with an encoding the
// server does not support is refused in the tap without a deadline, and
// told UNIMPLEMENTED with a far one.
func TestDeferredRefusalsComeAfterTheEncodingCheck(t *testing.T) {
	_, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	bogus := hpack.HeaderField{Name: "grpc-encoding", Value: "bogus"}
	checkRawEnds(t, addr, []rawEnd{
		{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{bogus}, rawh2.StreamEnd{Status: "16"}},
		{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{bogus, grpcTimeout}, rawh2.StreamEnd{Status: "12", Message: `grpc: Decompressor is not installed for grpc-encoding "bogus"`}},
	})
}

// With tracing on, a deferred refusal makes a span, as does a call to a
// method the server does not serve, as docs/security.md says, where a
// refusal in the tap makes none: grpc-go starts the stats handlers only for
// the calls the tap lets through.
func TestDeferredRefusalsAreTraced(t *testing.T) {
	_, addr, spans := tracedServer(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	ctx := testCtx(t)
	checkRawEnds(t, addr, []rawEnd{
		{roomcastv1.BrokerService_History_FullMethodName, nil, rawh2.StreamEnd{Status: "16"}},
		{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{grpcTimeout}, rawh2.StreamEnd{Status: "16"}},
		{"/made.Up/Nope", []hpack.HeaderField{authorization(t)}, rawh2.StreamEnd{Status: "12"}},
	})
	type end struct {
		code   string
		status otelcodes.Code
	}
	want := map[string]end{"roomcast.v1.BrokerService/Publish": {"UNAUTHENTICATED", otelcodes.Unset}, "made.Up/Nope": {"UNIMPLEMENTED", otelcodes.Error}}
	for range 2 { // in either order
		s := spans.next(t, ctx)
		checkSpan(t, s, s.Name(), want[s.Name()].code, want[s.Name()].status)
	}
	if len(spans) != 0 {
		t.Errorf("%d more spans, want none of the call refused in the tap", len(spans))
	}
}

// Refused calls with near deadlines are refused in the tap while the timers
// they leave fit the budget; past it, they are deferred too.
func TestNearDeadlinesAreRefusedInTheTapWithinTheBudget(t *testing.T) {
	s, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithHeldTimers(2, 0))
	near := hpack.HeaderField{Name: "grpc-timeout", Value: "10S"}
	end := rawh2.StreamEnd{Status: "16"}
	checkRawEnds(t, addr, []rawEnd{
		{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{near}, end},
		{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{near}, end},
	})
	if n := server.DeferredRefusals(s); n != 0 {
		t.Fatalf("%d refusals with 10-second deadlines deferred within a budget of 2, want none", n)
	}
	checkRawEnds(t, addr, []rawEnd{{roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{near}, end}})
	if n := server.DeferredRefusals(s); n != 1 {
		t.Fatalf("%d refusals deferred past the budget, want the third", n)
	}
}

// Streams refused past their credential's limit whose deadlines are one
// instant, as those of attack (d) of issue #13 (all the attacker's), are
// refused in the tap only up to the per-second budget of the timers it
// leaves; the rest are deferred, and their contexts cancelled as they
// end, so that the timers cannot all fire together at the deadline.
// Unary calls, whose clients send their requests at once, to be buffered
// until a deferred refusal, have a larger budget a second.
func TestRefusalsWithOneDeadlineLeaveFewTimers(t *testing.T) {
	const perSecond, refused = 3, 12
	s, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)), server.WithMaxStreamsPerCredential(1), server.WithHeldTimers(0, perSecond))
	ctx := bearer(testCtx(t), testjwt.Token(t, "a", time.Now().Add(time.Hour), testjwt.Grants(t, "", ">", "")))
	c := dial(t, addr)
	subscribe(t, ctx, c)
	one, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range refused {
		stream, err := c.Subscribe(one)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a stream past the limit ended with %v, want RESOURCE_EXHAUSTED", err)
		}
	}
	// The server's clock may pass a second between the calls' deadlines,
	// which then fall in two seconds of perSecond each.
	deferred := server.DeferredRefusals(s)
	if deferred < refused-2*perSecond || deferred > refused-perSecond {
		t.Errorf("%d of %d refusals with one deadline deferred, want all but the %d (or, over a second's turn, %d) a second may leave", deferred, refused, perSecond, 2*perSecond)
	}
	// Unary calls have server.UnaryPerSecondFactor times a second's budget:
	// 2×perSecond more fit beside the streams' timers, which take at most
	// 2×perSecond of the two seconds their deadlines may fall in, but
	// 8×perSecond more do not.
	h := dialRaw(t, addr)
	near := hpack.HeaderField{Name: "grpc-timeout", Value: "10S"}
	publish := func(n int) int {
		before := server.DeferredRefusals(s)
		for range n {
			id, err := rawCall(h, roomcastv1.BrokerService_Publish_FullMethodName, []hpack.HeaderField{near}, true)
			if err != nil {
				t.Fatal(err)
			}
			if end, err := h.WaitStream(ctx, id); err != nil || end.Status != "16" {
				t.Fatalf("a publish without a credential ended with %+v (%v), want UNAUTHENTICATED", end, err)
			}
		}
		return int(server.DeferredRefusals(s) - before)
	}
	if n := publish(2 * perSecond); n != 0 {
		t.Errorf("%d of %d unary calls refused with one deadline deferred, want none", n, 2*perSecond)
	}
	if n := publish(8 * perSecond); n == 0 {
		t.Errorf("none of %d more unary calls refused with one deadline deferred, past %d a second", 8*perSecond, server.UnaryPerSecondFactor*perSecond)
	}
}
