package server_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// A unary Publish passes the server's interceptors in order whether they
// are bound to its handler once (no interceptor given with
// WithGRPCOptions) or chained per call (one given): metrics counts the
// call with the code panic recovery made of a panic, and an interceptor
// given with WithGRPCOptions runs for every Publish, inside the recovery.
func TestPublishPassesEveryInterceptorInOrder(t *testing.T) {
	for _, extra := range []bool{false, true} {
		name := map[bool]string{false: "server's own", true: "with WithGRPCOptions' interceptor"}[extra]
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			opts := []server.Option{server.WithMetrics(reg), server.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), server.WithPublishHook(func(req *roomcastv1.PublishRequest) {
				if req.GetRoom() == "boom" {
					panic("the test hook panics")
				}
			})}
			var seen atomic.Int64
			if extra {
				opts = append(opts, server.WithGRPCOptions(grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
					r, ok := req.(*roomcastv1.PublishRequest)
					if !ok || info.FullMethod != roomcastv1.BrokerService_Publish_FullMethodName {
						return handler(ctx, req)
					}
					seen.Add(1)
					if r.GetRoom() == "boom.extra" {
						panic("the test interceptor panics")
					}
					return handler(ctx, req)
				})))
			}
			_, addr := start(t, opts...)
			ctx := testCtx(t)
			c := dial(t, addr)
			rooms := map[string]codes.Code{"ok": codes.OK, "boom": codes.Internal}
			if extra {
				rooms["boom.extra"] = codes.Internal
			}
			for room, want := range rooms {
				if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: room}); status.Code(err) != want {
					t.Errorf("publish to %q: %v, want %v", room, err, want)
				}
			}
			handled := func(code codes.Code) float64 {
				return counterOf(t, reg, "grpc_server_handled_total", map[string]string{"grpc_method": "Publish", "grpc_code": code.String()})
			}
			if n, want := handled(codes.Internal), float64(len(rooms)-1); n != want {
				t.Errorf("grpc_server_handled_total{Publish, Internal} = %v, want %v", n, want)
			}
			if n := handled(codes.OK); n != 1 {
				t.Errorf("grpc_server_handled_total{Publish, OK} = %v, want 1", n)
			}
			if n := counter(t, reg, "roomcast_panics_total"); n != float64(len(rooms)-1) {
				t.Errorf("roomcast_panics_total = %v, want %v", n, len(rooms)-1)
			}
			if extra && seen.Load() != int64(len(rooms)) {
				t.Errorf("the interceptor given with WithGRPCOptions saw %d publishes, want %d", seen.Load(), len(rooms))
			}
		})
	}
}
