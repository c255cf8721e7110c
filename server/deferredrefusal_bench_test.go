//go:build unix

package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/rawh2"
)

// BenchmarkRefusedCall measures what the server spends on a Publish
// without a credential, refused in the tap ("tap": no grpc-timeout;
// "tap-10ms": grpc-timeout 10m, whose timer grpc-go keeps and fires 10 ms
// later, as it did every refused call's before deferred refusals) and, for
// its far deadline, by the Publish handler before it reads its request
// ("deferred": grpc-timeout 1000H, whose timer is stopped as the call ends). The server is roomcast serve's
// defaults with an API key, in a process of its own (see serveChild):
// server-µs/call is its CPU time per call, server-allocs/call its heap
// allocations. The calls go 100 to a raw HTTP/2 connection, as many as a
// connection may have refused within a second before the tap pauses it,
// so each call also carries a hundredth of a connection's set-up.
//
//	go test -run '^$' -bench BenchmarkRefusedCall -benchmem -benchtime=20000x -count 5 ./server/
func BenchmarkRefusedCall(b *testing.B) {
	for _, mode := range []struct {
		name  string
		extra []hpack.HeaderField
	}{
		{"tap", nil},
		{"tap-10ms", []hpack.HeaderField{{Name: "grpc-timeout", Value: "10m"}}},
		{"deferred", []hpack.HeaderField{grpcTimeout}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			child := startServeChild(b, "apikey")
			ctx := testCtx(b)
			b.ReportAllocs()
			cpu0, mallocs0 := child.usage(b)
			b.ResetTimer()
			refuseRaw(b, ctx, child.addr, roomcastv1.BrokerService_Publish_FullMethodName, mode.extra, true, "16")
			b.StopTimer()
			cpu1, mallocs1 := child.usage(b)
			b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(b.N), "server-µs/call")
			b.ReportMetric(float64(mallocs1-mallocs0)/float64(b.N), "server-allocs/call")
		})
	}
}

// refuseRaw makes b.N calls of method with the extra header fields (their
// headers ending the stream if endStream) on raw HTTP/2 connections of
// 100 calls each, and fails b unless each ends with the gRPC status code
// want (as its grpc-status says it).
func refuseRaw(b *testing.B, ctx context.Context, addr, method string, extra []hpack.HeaderField, endStream bool, want string) {
	for sent := 0; sent < b.N; {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		h, err := rawh2.New(conn)
		if err != nil {
			conn.Close()
			b.Fatal(err)
		}
		var ids []uint32
		for ; len(ids) < 100 && sent < b.N; sent++ {
			id, err := rawCall(h, method, extra, endStream)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if end, err := h.WaitStream(ctx, id); err != nil || end.Status != want {
				b.Fatalf("ended with %+v (%v), want grpc-status %s", end, err, want)
			}
		}
		h.Close()
		<-h.Done()
	}
}
