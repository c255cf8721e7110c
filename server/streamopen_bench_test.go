//go:build unix

package server_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
)

// BenchmarkSubscribeOpen measures what the server spends on a Subscribe
// stream of an API key, as roomcast serve runs it by default (see
// serveChild), in the two ways issue #13's attack (d) makes it spend:
//
//   - "open": a stream opened, greeted with its session and ended by its
//     client, in batches of openBatch held open at once over
//     openConns connections, as a client opening many streams makes them;
//   - "refused": a stream refused in the tap, from its headers, because
//     its credential has its limit of streams open (one, here), sent 100
//     to a raw HTTP/2 connection (as many as a connection may have
//     refused within a second before the tap pauses it), so each also
//     carries a hundredth of a connection's set-up;
//   - "refused-deferred": the same with a far deadline (grpc-timeout
//     1000H), refused by the server's first code past the tap rather than
//     in it, as a stream refused past the tap's budget of deadline timers
//     is (see deferredrefusal.go): the path most of attack (d)'s refusals
//     take, their deadlines in one second.
//
// server-µs/stream is the server's CPU time per stream, server-allocs/stream
// its heap allocations; ns/op and allocs/op are the client's. The server's
// profiles go where BenchmarkPublishServe's do.
//
//	go test -run '^$' -bench BenchmarkSubscribeOpen -benchmem -benchtime=5000x -count 5 ./server/
func BenchmarkSubscribeOpen(b *testing.B) {
	b.Run("open", benchmarkOpenStreams)
	b.Run("refused", func(b *testing.B) { benchmarkRefusedStreams(b, nil) })
	b.Run("refused-deferred", func(b *testing.B) { benchmarkRefusedStreams(b, []hpack.HeaderField{grpcTimeout}) })
}

// openBatch is how many streams the "open" benchmark holds open at once,
// and openConns over how many connections.
const openBatch, openConns = 100, 4

func benchmarkOpenStreams(b *testing.B) {
	child := startServeChild(b, "apikey")
	ctx := bearer(testCtx(b), child.key)
	conns := make([]roomcastv1.BrokerServiceClient, openConns)
	for i := range conns {
		conns[i] = roomcastv1.NewBrokerServiceClient(servertest.Dial(b, child.addr))
	}
	b.ReportAllocs()
	cpu0, mallocs0 := child.usage(b)
	b.ResetTimer()
	type open struct {
		stream grpc.BidiStreamingClient[roomcastv1.SubscribeRequest, roomcastv1.SubscribeResponse]
		cancel context.CancelFunc
	}
	batch := make([]open, 0, openBatch)
	for opened := 0; opened < b.N; {
		for ; len(batch) < openBatch && opened < b.N; opened++ {
			sctx, cancel := context.WithCancel(ctx)
			stream, err := conns[opened%len(conns)].Subscribe(sctx)
			if err == nil {
				_, err = stream.Recv() // the session event: the handler runs
			}
			if err != nil {
				cancel()
				b.Fatal(err)
			}
			batch = append(batch, open{stream, cancel})
		}
		for _, o := range batch {
			o.cancel()
		}
		batch = batch[:0]
	}
	b.StopTimer()
	cpu1, mallocs1 := child.usage(b)
	reportPerStream(b, cpu1-cpu0, mallocs1-mallocs0)
}

// benchmarkRefusedStreams refuses streams with the extra header fields.
func benchmarkRefusedStreams(b *testing.B, extra []hpack.HeaderField) {
	child := startServeChild(b, "apikey-one-stream")
	ctx := testCtx(b)
	held := subscribe(b, bearer(ctx, child.key), dial(b, child.addr)) // the credential's one stream
	b.Cleanup(func() { held.stream.CloseSend() })
	auth := append([]hpack.HeaderField{{Name: "authorization", Value: "Bearer " + child.key}}, extra...)
	b.ReportAllocs()
	cpu0, mallocs0 := child.usage(b)
	b.ResetTimer()
	refuseRaw(b, ctx, child.addr, roomcastv1.BrokerService_Subscribe_FullMethodName, auth, false, "8")
	b.StopTimer()
	cpu1, mallocs1 := child.usage(b)
	reportPerStream(b, cpu1-cpu0, mallocs1-mallocs0)
}

// reportPerStream reports the server's CPU time and allocations per stream.
func reportPerStream(b *testing.B, cpu time.Duration, mallocs uint64) {
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "server-µs/stream")
	b.ReportMetric(float64(mallocs)/float64(b.N), "server-allocs/stream")
}
