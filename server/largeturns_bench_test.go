package server_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkLargePublishes publishes messages of just under 1 MiB from 4
// callers per P at once, each to a room of its own, over one loopback
// connection of the real client, with the server's large requests decoded
// in turns (its default) and without: what the turns cost large
// publishes when nothing else competes for the server. The byte and
// publish rates are off, so that the server, not a limit, is measured.
//
//	go test -run '^$' -bench BenchmarkLargePublishes -benchmem -count 3 ./server/
func BenchmarkLargePublishes(b *testing.B) {
	for _, turns := range []bool{true, false} {
		name := "turns"
		opts := []server.Option{server.WithPublishRate(0, 0), server.WithPublishByteRate(0, 0)}
		if !turns {
			name = "noturns"
			opts = append(opts, server.WithLargeRequestTurns(0))
		}
		b.Run(name, func(b *testing.B) {
			_, addr := start(b, opts...)
			c := dial(b, addr)
			ctx := testCtx(b)
			data := make([]byte, 1<<20-2<<10)
			var rooms atomic.Int64
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				req := &roomcastv1.PublishRequest{Room: fmt.Sprintf("large.%d", rooms.Add(1)), Payload: &roomcastv1.PublishRequest_Data{Data: data}}
				for pb.Next() {
					if _, err := c.Publish(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
