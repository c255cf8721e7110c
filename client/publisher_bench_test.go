package client_test

import (
	"testing"

	"github.com/roomcast/roomcast/client"
)

// BenchmarkPublisher measures the Publisher over loopback, 64-byte messages
// to one room: publish waits for each answer before the next, from one
// goroutine; parallel shares one Publisher among 64 goroutines; async sends
// with PublishAsync from one goroutine and waits for the answers a window
// later. Each reports publishes/s, and publishes/request: how many
// messages the Publisher's batches carried on average, counted on the
// server.
//
//	go test -run '^$' -bench BenchmarkPublisher -benchmem -benchtime=2000x ./client/
func BenchmarkPublisher(b *testing.B) {
	data := make([]byte, 64)
	var count *answerCount
	setup := func(b *testing.B) *client.Publisher {
		count = new(answerCount)
		_, addr := start(b, count.option())
		return newPublisher(b, testCtx(b), dial(b, addr))
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "publishes/s")
		b.ReportMetric(float64(count.answers.Load())/float64(max(count.responses.Load(), 1)), "publishes/request")
	}
	b.Run("publish", func(b *testing.B) {
		p := setup(b)
		ctx := testCtx(b)
		b.ResetTimer()
		for range b.N {
			if _, _, err := p.Publish(ctx, "bench", data); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		p := setup(b)
		ctx := testCtx(b)
		b.SetParallelism(32) // with GOMAXPROCS 2: 64 goroutines
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := p.Publish(ctx, "bench", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("async", func(b *testing.B) {
		p := setup(b)
		ctx := testCtx(b)
		calls := make(chan *client.PublishCall, client.DefaultMaxInFlight)
		done := make(chan error, 1)
		b.ResetTimer()
		go func() {
			for call := range calls {
				if _, _, err := call.Wait(ctx); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for range b.N {
			calls <- p.PublishAsync(ctx, "bench", data)
		}
		close(calls)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		report(b)
	})
}
