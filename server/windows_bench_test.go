//go:build unix

package server_test

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// BenchmarkPublishStreamRTT is a PublishStream publisher over a 50 ms round
// trip (a proxy on loopback delays each direction 25 ms) with the server's
// receive windows fixed, or dynamic: what a window per round trip leaves
// of the stream's own window of 256 publishes a round trip. An op is one
// publish; 64 to a request, sent by one goroutine while another reads the
// answers.
//
//	go test -run '^$' -bench BenchmarkPublishStreamRTT -benchtime=10000x ./server/
func BenchmarkPublishStreamRTT(b *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, window := range []int{0, 64 << 10, 256 << 10, 1 << 20} {
			name := fmt.Sprintf("payload=%d/window=%dKiB", size, window>>10)
			if window == 0 {
				name = fmt.Sprintf("payload=%d/window=dynamic", size)
			}
			b.Run(name, func(b *testing.B) {
				_, addr := start(b, server.WithReceiveWindows(window, 16*window), server.WithPublishByteRate(0, 0))
				proxy := startDelayProxy(b, addr, 25*time.Millisecond)
				ctx := testCtx(b)
				c := roomcastv1.NewBrokerServiceClient(servertest.Dial(b, proxy))
				stream, err := c.PublishStream(ctx)
				if err != nil {
					b.Fatal(err)
				}
				reqs := streamBenchRequests(b.N, &roomcastv1.PublishRequest_Data{Data: make([]byte, size)})
				b.ResetTimer()
				sendAndAwait(b, stream, reqs)
				reportRate(b)
				b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds()/1e6, "payload-MB/s")
			})
		}
	}
}

// startDelayProxy forwards connections to backend, delaying what goes
// either way by delay (but not limiting its rate), until the benchmark
// ends; it returns its address.
func startDelayProxy(b testing.TB, backend string, delay time.Duration) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			track(c)
			track(up)
			wg.Add(4)
			go delayLine(&wg, up, c, delay)
			go delayLine(&wg, c, up, delay)
		}
	}()
	b.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// delayLine copies src to dst, each read delay later; two goroutines, each
// of which calls wg.Done as it ends. It closes both at the end.
func delayLine(wg *sync.WaitGroup, dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	line := make(chan chunk, 1<<14) // more than a round trip's reads
	go func() {
		defer wg.Done()
		defer close(line)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				line <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	defer wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		for range line { // until the reader ends
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for c := range line {
		if d := time.Until(c.due); d > 0 {
			timer.Reset(d)
			<-timer.C
		}
		if _, err := dst.Write(c.b); err != nil && !errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// sendAndAwait sends reqs on stream from a goroutine of its own while it
// reads their answers, and stops b's timer once every publish of the b.N
// is answered.
func sendAndAwait(b *testing.B, stream grpc.BidiStreamingClient[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse], reqs []*roomcastv1.PublishStreamRequest) {
	sent := sendAll(stream.Send, reqs, stream.CloseSend)
	awaitAnswers(b, stream, b.N)
	b.StopTimer()
	if err := <-sent; err != nil {
		b.Fatal(err)
	}
}

// awaitAnswers reads a PublishStream's answers until n publishes are
// answered, failing b at a refusal or the stream's end.
func awaitAnswers(b *testing.B, stream grpc.BidiStreamingClient[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse], n int) {
	for answered := 0; answered < n; {
		resp, err := stream.Recv()
		if err != nil {
			b.Fatalf("after %d answers: %v", answered, err)
		}
		if e := resp.GetError(); e != nil {
			b.Fatalf("publish %s refused: %v", resp.GetId(), e)
		}
		answered += 1 + len(resp.GetBatch())
	}
}

// sendAll sends reqs with send from a goroutine of its own, then calls
// done, and delivers the first error (or done's) on the channel it
// returns: the reader of the answers stays the caller.
func sendAll[Req any](send func(Req) error, reqs []Req, done func() error) <-chan error {
	sent := make(chan error, 1)
	go func() {
		for _, req := range reqs {
			if err := send(req); err != nil {
				sent <- err
				return
			}
		}
		sent <- done()
	}()
	return sent
}
