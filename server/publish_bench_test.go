package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkPublish measures publishing alone over loopback: 64-byte
// messages to one room with one subscriber, whose stream is drained on the
// side. unary waits for each Publish before the next, as a simple publisher
// does; unary-parallel keeps 32 Publish calls in flight; stream pipelines
// every publish on one PublishStream, one a request; stream-batch sends
// them 64 a request. Each reports publishes/s.
//
//	go test -run '^$' -bench BenchmarkPublish -benchmem -benchtime=2000x ./server/
func BenchmarkPublish(b *testing.B) {
	payload := &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}
	b.Run("unary", func(b *testing.B) {
		c, ctx := benchServer(b)
		b.ResetTimer()
		for range b.N {
			if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "bench", Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("unary-parallel", func(b *testing.B) {
		c, ctx := benchServer(b)
		b.SetParallelism(16) // with GOMAXPROCS 2: 32 calls in flight
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Publish(ctx, &roomcastv1.PublishRequest{Room: "bench", Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRate(b)
	})
	b.Run("stream", func(b *testing.B) {
		c, ctx := benchServer(b)
		stream, err := c.PublishStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		sent := make(chan error, 1)
		go func() {
			req := &roomcastv1.PublishStreamRequest{Publish: &roomcastv1.PublishRequest{Room: "bench", Payload: payload}}
			for i := range b.N {
				req.Id = fmt.Sprint(i)
				if err := stream.Send(req); err != nil {
					sent <- err
					return
				}
			}
			sent <- stream.CloseSend()
		}()
		for range b.N {
			resp, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if resp.GetOk() == nil {
				b.Fatal(resp)
			}
		}
		if err := <-sent; err != nil {
			b.Fatal(err)
		}
		reportRate(b)
	})
	b.Run("stream-batch", func(b *testing.B) {
		const batch = 64 // publishes per request
		c, ctx := benchServer(b)
		stream, err := c.PublishStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		reqs := (b.N + batch - 1) / batch
		b.ResetTimer()
		sent := make(chan error, 1)
		go func() {
			for i := range reqs {
				req := &roomcastv1.PublishStreamRequest{Id: fmt.Sprint(i), Publish: &roomcastv1.PublishRequest{Room: "bench", Payload: payload}}
				for j := 1; j < min(batch, b.N-i*batch); j++ {
					req.Batch = append(req.Batch, &roomcastv1.PublishStreamItem{Id: fmt.Sprint(i, ".", j), Publish: req.Publish})
				}
				if err := stream.Send(req); err != nil {
					sent <- err
					return
				}
			}
			sent <- stream.CloseSend()
		}()
		for range reqs {
			resp, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			if resp.GetOk() == nil {
				b.Fatal(resp)
			}
		}
		if err := <-sent; err != nil {
			b.Fatal(err)
		}
		reportRate(b)
	})
}

// benchServer starts a server with one subscriber of room "bench", drained
// until the benchmark ends, and returns a client of it. The backlog is large
// enough that the subscriber is not cut off as a slow consumer by a burst
// of up to 50,000 publishes. opts are added to the server's.
func benchServer(b *testing.B, opts ...server.Option) (roomcastv1.BrokerServiceClient, context.Context) {
	_, addr := start(b, append([]server.Option{server.WithBrokerOptions(broker.WithBacklog(1<<16, 64<<20), broker.WithMaxRetainedBytes(1<<30))}, opts...)...)
	ctx := testCtx(b)
	subCtx, cancel := context.WithCancel(ctx)
	sub := subscribe(b, subCtx, dial(b, addr), "bench")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := sub.stream.Recv(); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return dial(b, addr), ctx
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
}
