package server_test

import (
	"io"
	"log/slog"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkPublishAccessLog measures what the access log costs a unary
// Publish over loopback, one call at a time: off; on at info, where a
// successful publish's line is at debug and so dropped by an info logger;
// and with a debug logger, which writes them as text to a discarding
// writer (what a log shipper's pipe costs comes on top).
//
//	go test -run '^$' -bench BenchmarkPublishAccessLog -benchtime=20000x -count 5 ./server/
func BenchmarkPublishAccessLog(b *testing.B) {
	payload := &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	debugLogger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, tc := range []struct {
		name string
		opts []server.Option
	}{
		{"off", []server.Option{server.WithLogger(logger)}},
		{"info", []server.Option{server.WithLogger(logger), server.WithAccessLog(slog.LevelInfo)}},
		{"debug", []server.Option{server.WithLogger(debugLogger), server.WithAccessLog(slog.LevelInfo)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, ctx := benchServer(b, tc.opts...)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "bench", Payload: payload}); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}
