package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// lockedBuffer is a bytes.Buffer that a server's logger may write to while
// the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A panic in a handler ends that call with INTERNAL, is logged with its
// stack and counted, and the server goes on serving every other call.
func TestAPanicInAHandlerEndsOnlyItsCall(t *testing.T) {
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	_, addr := start(t, server.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), server.WithMetrics(reg),
		server.WithPublishHook(func(req *roomcastv1.PublishRequest) {
			if req.GetRoom() == "boom" {
				panic("the test hook panics")
			}
		}))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "ok")
	for range 2 {
		_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "boom"})
		if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "test hook") {
			t.Errorf("publish that panics: %v, want INTERNAL telling nothing of the panic", err)
		}
	}
	publishText(t, ctx, c, "ok", "still serving")
	if m := sub.next(); m.GetText() != "still serving" {
		t.Errorf("subscriber got %v", m)
	}
	log := logs.String()
	for _, want := range []string{"recovered from a panic", "in=/roomcast.v1.BrokerService/Publish", `panic="the test hook panics"`, "server.(*Server).publishUnary"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := counter(t, reg, "roomcast_panics_total"); n != 2 {
		t.Errorf("roomcast_panics_total is %v, want 2", n)
	}
}

// A panic in the tap, which grpc-go runs on the connection's reading
// goroutine, ends that call with INTERNAL, is logged and counted, and the
// connection and the server go on serving.
func TestAPanicInTheTapEndsOnlyItsCall(t *testing.T) {
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	var once sync.Once
	_, addr := start(t, server.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), server.WithMetrics(reg),
		server.WithTapHook(func(method string) {
			if method == roomcastv1.BrokerService_Publish_FullMethodName {
				once.Do(func() { panic("the tap hook panics") })
			}
		}))
	ctx := testCtx(t)
	c := dial(t, addr)
	_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "r"})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "tap hook") {
		t.Errorf("publish whose tap panics: %v, want INTERNAL telling nothing of the panic", err)
	}
	publishText(t, ctx, c, "r", "still serving, on the same connection")
	if log := logs.String(); !strings.Contains(log, "recovered from a panic") || !strings.Contains(log, `panic="the tap hook panics"`) {
		t.Errorf("log lacks the panic:\n%s", log)
	}
	if n := counter(t, reg, "roomcast_panics_total"); n != 1 {
		t.Errorf("roomcast_panics_total is %v, want 1", n)
	}
}

// A panic while a unary call's request is decoded, before any interceptor
// runs, ends that call with INTERNAL, is logged and counted, and the
// server goes on serving: grpc-go recovers nothing there.
func TestAPanicWhileDecodingEndsOnlyItsCall(t *testing.T) {
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	var armed atomic.Bool
	_, addr := start(t, server.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), server.WithMetrics(reg),
		server.WithDecodeHook(func(msg any) {
			if _, ok := msg.(*roomcastv1.PublishRequest); ok && armed.Load() {
				panic("the test's decode hook panics")
			}
		}))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "ok")
	armed.Store(true)
	for range 2 {
		_, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "ok", Payload: &roomcastv1.PublishRequest_Text{Text: "never published"}})
		if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "decode hook") {
			t.Errorf("publish whose decoding panics: %v, want INTERNAL telling nothing of the panic", err)
		}
	}
	armed.Store(false)
	publishText(t, ctx, c, "ok", "still serving")
	if m := sub.next(); m.GetText() != "still serving" {
		t.Errorf("subscriber got %v, want only what was published after the panics", m)
	}
	log := logs.String()
	for _, want := range []string{"recovered from a panic", "in=/roomcast.v1.BrokerService/Publish", `panic="the test's decode hook panics"`, "server.codec.Unmarshal"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := counter(t, reg, "roomcast_panics_total"); n != 2 {
		t.Errorf("roomcast_panics_total is %v, want 2", n)
	}
}
