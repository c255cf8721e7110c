//go:build unix

package server_test

import (
	"strconv"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// benchStreamBatch is how many publishes each request of
// BenchmarkPublishStreamServe carries: its own and its batch's. A quarter
// of the stream's window, so that four requests are in flight.
const benchStreamBatch = 64

// BenchmarkPublishStreamServe is BenchmarkPublishServe's measure (the
// server in a process of its own with serve's defaults, server-µs/publish
// and server-allocs/publish) for PublishStream: one stream on one
// connection, requests of benchStreamBatch 64-byte publishes to one room
// with one subscriber, sent by one goroutine while another reads the
// answers. An op is one publish. The same environment variables apply.
//
//	go test -run '^$' -bench BenchmarkPublishStreamServe -benchmem -benchtime=200000x -count 6 ./server/
func BenchmarkPublishStreamServe(b *testing.B) {
	payload := &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}
	for _, mode := range []string{"open", "apikey"} {
		b.Run(mode, func(b *testing.B) {
			child, ctx, c := startServeTarget(b, mode)
			stream, err := c.PublishStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			reqs := streamBenchRequests(b.N, payload)
			b.ReportAllocs()
			cpu0, mallocs0 := child.usage(b)
			b.ResetTimer()
			sendAndAwait(b, stream, reqs)
			cpu1, mallocs1 := child.usage(b)
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(b.N), "server-µs/publish")
			b.ReportMetric(float64(mallocs1-mallocs0)/float64(b.N), "server-allocs/publish")
			reportRate(b)
		})
	}
}

// streamBenchRequests makes the requests that carry n publishes of payload,
// benchStreamBatch to a request, made before the clock starts.
func streamBenchRequests(n int, payload *roomcastv1.PublishRequest_Data) []*roomcastv1.PublishStreamRequest {
	pub := &roomcastv1.PublishRequest{Room: "bench", Payload: payload}
	var reqs []*roomcastv1.PublishStreamRequest
	for i := 0; i < n; i += benchStreamBatch {
		req := &roomcastv1.PublishStreamRequest{Id: strconv.Itoa(i), Publish: pub}
		for j := i + 1; j < min(n, i+benchStreamBatch); j++ {
			req.Batch = append(req.Batch, &roomcastv1.PublishStreamItem{Id: strconv.Itoa(j), Publish: pub})
		}
		reqs = append(reqs, req)
	}
	return reqs
}
