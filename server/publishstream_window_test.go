package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// windowStream is a PublishStream without gRPC whose publisher always has
// another request ready, and whose answers the test lets through one at a
// time: what a slow reader of answers looks like to the server. It records
// how many requests the server had read and not yet answered whenever it
// reads another.
type windowStream struct {
	grpc.ServerStream // nil: only the methods below are called
	ctx               context.Context
	allow             chan struct{} // one token per answer the test lets through

	mu         sync.Mutex
	read, sent int
	maxAhead   int // the most read and unanswered when a read began
}

func (f *windowStream) Context() context.Context { return f.ctx }

func (f *windowStream) RecvMsg(m any) error {
	f.mu.Lock()
	f.maxAhead = max(f.maxAhead, f.read-f.sent)
	f.read++
	n := f.read
	f.mu.Unlock()
	*m.(*roomcastv1.PublishStreamRequest) = roomcastv1.PublishStreamRequest{Id: fmt.Sprint(n), Publish: &roomcastv1.PublishRequest{Room: "r"}}
	return nil
}

func (f *windowStream) Recv() (*roomcastv1.PublishStreamRequest, error) {
	req := new(roomcastv1.PublishStreamRequest)
	return req, f.RecvMsg(req)
}

func (f *windowStream) Send(*roomcastv1.PublishStreamResponse) error {
	select {
	case <-f.allow:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	f.mu.Lock()
	f.sent++
	f.mu.Unlock()
	return nil
}

func (f *windowStream) counts() (read, sent, maxAhead int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.read, f.sent, f.maxAhead
}

var _ grpc.BidiStreamingServer[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse] = (*windowStream)(nil)

// The server reads a PublishStream's next request only while fewer than
// publishWindow of its publishes are unanswered: with answers held back,
// it reads exactly the window, and one more for each answer let through.
func TestPublishStreamReadsAtMostTheWindowAhead(t *testing.T) {
	srv := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := &windowStream{ctx: ctx, allow: make(chan struct{})}
	ended := make(chan error, 1)
	go func() { ended <- srv.PublishStream(f) }()
	defer func() {
		cancel()
		<-ended
	}()
	for answered := 0; answered < 3*publishWindow; answered += publishWindow / 2 {
		waitFor(t, fmt.Sprintf("the server reads %d requests", answered+publishWindow), func() bool {
			read, _, _ := f.counts()
			return read >= answered+publishWindow
		})
		for range publishWindow / 2 {
			f.allow <- struct{}{}
		}
	}
	if _, _, ahead := f.counts(); ahead != publishWindow-1 {
		t.Fatalf("the most requests unanswered when the server read another: %d, want %d (the window, %d, less the one read)", ahead, publishWindow-1, publishWindow)
	}
}
