package server_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkTracing measures what WithTracing costs, off and on: on, every
// span is sampled and exported in batches to an exporter that drops them,
// so the figures are the stats handler's and the SDK's, not an exporter's.
// publish is a unary Publish of 64 bytes over loopback, waiting for each;
// fanout publishes one message to 16 Subscribe streams on one connection
// and waits until each has received it, so each op is 16 stream sends
// (16 SendMsg on the connection's writer).
//
//	go test -run '^$' -bench BenchmarkTracing -benchmem -benchtime=2000x -count 3 ./server/
func BenchmarkTracing(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		opts := func(b *testing.B) []server.Option {
			if mode == "off" {
				return nil
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			return []server.Option{server.WithTracing(tp)}
		}
		b.Run("publish/"+mode, func(b *testing.B) {
			c, ctx := benchServer(b, opts(b)...)
			req := &roomcastv1.PublishRequest{Room: "bench", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}}
			b.ResetTimer()
			for range b.N {
				if _, err := c.Publish(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("fanout/"+mode, func(b *testing.B) {
			const streams = 16
			srv, addr := start(b, opts(b)...)
			ctx := testCtx(b)
			c := dial(b, addr)
			subs := make([]*subscriber, streams)
			for i := range subs {
				subs[i] = subscribe(b, ctx, c, "fan")
			}
			payload := make([]byte, 64)
			b.ResetTimer()
			for range b.N {
				msg := &roomcastv1.Message{Room: "fan", Payload: &roomcastv1.Message_Data{Data: payload}}
				if _, _, err := srv.Broker().Publish(ctx, msg, ""); err != nil {
					b.Fatal(err)
				}
				for _, s := range subs {
					s.next()
				}
			}
			b.ReportMetric(float64(b.N*streams)/b.Elapsed().Seconds(), "sends/s")
		})
	}
}

// discardExporter drops the spans it is given.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
