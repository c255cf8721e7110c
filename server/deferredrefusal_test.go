package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
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

// A call to a method the server does not serve, refused in the tap with a
// far deadline, is answered UNIMPLEMENTED by grpc-go, which cancels its
// context; without a deadline it gets the tap's refusal.
func TestUnknownMethodsRefusedWithFarDeadlines(t *testing.T) {
	s, addr := start(t, server.WithAuthenticator(testjwt.Authenticator(t)))
	ctx := testCtx(t)
	h := dialRaw(t, addr)
	for _, tc := range []struct {
		extra  []hpack.HeaderField
		status string
	}{{nil, "16"}, {[]hpack.HeaderField{grpcTimeout}, "12"}} {
		id, err := rawCall(h, "/roomcast.v1.BrokerService/Nope", tc.extra, true)
		if err != nil {
			t.Fatal(err)
		}
		if end, err := h.WaitStream(ctx, id); err != nil || end.Status != tc.status {
			t.Errorf("headers %v: ended with %+v (%v), want grpc-status %s", tc.extra, end, err, tc.status)
		}
	}
	if n := server.DeferredRefusals(s); n != 1 {
		t.Errorf("%d refusals deferred, want the one with a deadline", n)
	}
}
