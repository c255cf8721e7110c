package server_test

import (
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A panic in a turn of one stream, over real gRPC, ends that stream with
// INTERNAL and nothing else: another stream on the same connection keeps
// receiving, the panic is counted, and the server goes on serving new
// streams on that connection and on others.
func TestAPanicInATurnEndsOnlyItsStream(t *testing.T) {
	reg := prometheus.NewRegistry()
	var victim atomic.Pointer[string]
	hook := func(id string) {
		if v := victim.Load(); v != nil && *v == id {
			panic("test: a turn panics")
		}
	}
	_, addr := start(t, server.WithMetrics(reg), server.WithLogger(slog.New(slog.DiscardHandler)), server.WithTurnHook(hook))
	ctx := testCtx(t)
	c := dial(t, addr)
	doomed := subscribe(t, ctx, c, "r")
	other := subscribe(t, ctx, c, "r")

	victim.Store(&doomed.session)
	if err := doomed.stream.Send(&roomcastv1.SubscribeRequest{Id: "j", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "s"}}}); err != nil {
		t.Fatal(err)
	}
	doomed.expectEnd(codes.Internal)
	off := publishText(t, ctx, c, "r", "after the panic")
	if m := other.next(); m.GetOffset() != off {
		t.Fatalf("other stream got offset %d, want %d", m.GetOffset(), off)
	}
	if n := counter(t, reg, "roomcast_panics_total"); n != 1 {
		t.Errorf("roomcast_panics_total = %v, want 1", n)
	}

	fresh := subscribe(t, ctx, c, "r")
	elsewhere := subscribe(t, ctx, dial(t, addr), "r")
	off = publishText(t, ctx, c, "r", "still serving")
	for _, s := range []*subscriber{other, fresh, elsewhere} {
		if m := s.next(); m.GetOffset() != off {
			t.Fatalf("stream got offset %d, want %d", m.GetOffset(), off)
		}
	}
}
