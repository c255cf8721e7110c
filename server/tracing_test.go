package server_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// endedSpans is a span processor that hands each ended span to a channel,
// so that a test can wait for a span that a server goroutine ends.
type endedSpans chan sdktrace.ReadOnlySpan

func (e endedSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e endedSpans) OnEnd(s sdktrace.ReadOnlySpan)                   { e <- s }
func (e endedSpans) Shutdown(context.Context) error                  { return nil }
func (e endedSpans) ForceFlush(context.Context) error                { return nil }

// tracedServer starts a server with opts that records its spans in the
// returned channel.
func tracedServer(t *testing.T, opts ...server.Option) (*server.Server, string, endedSpans) {
	t.Helper()
	spans := make(endedSpans, 64)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	srv, addr := start(t, append(opts, server.WithTracing(tp))...)
	return srv, addr, spans
}

// next returns the next ended span, failing the test if none comes before ctx ends.
func (e endedSpans) next(t *testing.T, ctx context.Context) sdktrace.ReadOnlySpan {
	t.Helper()
	select {
	case s := <-e:
		return s
	case <-ctx.Done():
		t.Fatal("no span ended")
		return nil
	}
}

// checkSpan checks a server span's name, gRPC status code and span status.
func checkSpan(t *testing.T, s sdktrace.ReadOnlySpan, name, code string, status otelcodes.Code) {
	t.Helper()
	if s.Name() != name || s.SpanKind() != trace.SpanKindServer {
		t.Fatalf("span %q of kind %v, want a server span %q", s.Name(), s.SpanKind(), name)
	}
	var got attribute.Value
	for _, a := range s.Attributes() {
		if a.Key == "rpc.response.status_code" {
			got = a.Value
		}
	}
	if got.AsString() != code {
		t.Errorf("%s: rpc.response.status_code %q, want %q (attributes %v)", name, got.AsString(), code, s.Attributes())
	}
	if s.Status().Code != status {
		t.Errorf("%s: span status %v, want %v", name, s.Status(), status)
	}
}

// With tracing on, each call is a server span named after its method, with
// its gRPC status code, a child of the caller's trace context.
func TestTracingSpans(t *testing.T) {
	srv, addr, spans := tracedServer(t)
	ctx := testCtx(t)
	c := dial(t, addr)

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	callCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-"+parentID+"-01")
	publishText(t, callCtx, c, "chat.lobby", "hello")
	s := spans.next(t, ctx)
	checkSpan(t, s, "roomcast.v1.BrokerService/Publish", "OK", otelcodes.Unset)
	if s.SpanContext().TraceID().String() != traceID || s.Parent().SpanID().String() != parentID {
		t.Errorf("span in trace %v under %v, want trace %s under %s", s.SpanContext().TraceID(), s.Parent().SpanID(), traceID, parentID)
	}

	_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("publish to no room: %v, want InvalidArgument", err)
	}
	// A client's mistake is not the server's error: its span status stays unset.
	checkSpan(t, spans.next(t, ctx), "roomcast.v1.BrokerService/Publish", "INVALID_ARGUMENT", otelcodes.Unset)

	sub := subscribe(t, ctx, c, "chat.lobby")
	if err := srv.Shutdown(ctx); err != nil { // ends the stream with UNAVAILABLE
		t.Fatal(err)
	}
	sub.expectEnd(codes.Unavailable)
	checkSpan(t, spans.next(t, ctx), "roomcast.v1.BrokerService/Subscribe", "UNAVAILABLE", otelcodes.Error)
}

// A Publish costs more allocations with a stats handler, even one whose
// tracer records nothing, than without: the cost WithTracing avoids when it
// is not given. If tracing were on by default, or a stats handler installed
// without it, the two counts would be equal and this would fail.
func TestTracingOffAllocatesLess(t *testing.T) {
	allocs := func(opts ...server.Option) float64 {
		_, addr := start(t, opts...)
		ctx := testCtx(t)
		c := dial(t, addr)
		req := &roomcastv1.PublishRequest{Room: "allocs", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}}
		return testing.AllocsPerRun(200, func() {
			if _, err := c.Publish(ctx, req); err != nil {
				t.Fatal(err)
			}
		})
	}
	off, on := allocs(), allocs(server.WithTracing(noop.NewTracerProvider()))
	t.Logf("allocations per Publish (client and server): %v off, %v with a no-op tracer", off, on)
	if on < off+5 {
		t.Errorf("%v allocations per Publish without tracing, %v with a no-op tracer: want at least 5 fewer without", off, on)
	}
}
