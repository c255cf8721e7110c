package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// windowStream is a PublishStream without gRPC whose publisher always has
// another request ready, and whose answers the test lets through one at a
// time: what a slow reader of answers looks like to the server. It records
// how many publishes the server had read and not yet answered whenever it
// reads another request.
type windowStream struct {
	grpc.ServerStream // nil: only the methods below are called
	ctx               context.Context
	allow             chan struct{} // one token per answer the test lets through
	publishes         int           // per request, its own and its batch's; 0 for 1

	mu         sync.Mutex
	read, sent int
	maxAhead   int // the most read and unanswered when a read began
}

func (f *windowStream) Context() context.Context { return f.ctx }

func (f *windowStream) SendHeader(metadata.MD) error { return nil }

func (f *windowStream) RecvMsg(m any) error {
	k := max(f.publishes, 1)
	f.mu.Lock()
	f.maxAhead = max(f.maxAhead, f.read-f.sent)
	f.read += k
	n := f.read
	f.mu.Unlock()
	req := m.(*roomcastv1.PublishStreamRequest)
	*req = roomcastv1.PublishStreamRequest{Id: fmt.Sprint(n), Publish: &roomcastv1.PublishRequest{Room: "r"}}
	for i := 1; i < k; i++ {
		req.Batch = append(req.Batch, &roomcastv1.PublishStreamItem{Id: fmt.Sprint(n, ".", i), Publish: &roomcastv1.PublishRequest{Room: "r"}})
	}
	return nil
}

func (f *windowStream) Recv() (*roomcastv1.PublishStreamRequest, error) {
	req := new(roomcastv1.PublishStreamRequest)
	return req, f.RecvMsg(req)
}

func (f *windowStream) Send(resp *roomcastv1.PublishStreamResponse) error {
	select {
	case <-f.allow:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	f.mu.Lock()
	f.sent += 1 + len(resp.GetBatch())
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

// With batches, the window counts publishes: the server reads the next
// request only while fewer than publishWindow publishes are unanswered,
// and holds a request until the window has a place for each of its
// publishes. Requests of k publishes (k dividing the window) therefore
// begin to be read with at most publishWindow-k unanswered, a batch as
// large as the window only once everything before it is answered.
func TestPublishStreamWindowCountsPublishes(t *testing.T) {
	srv := newTestServer(t)
	for _, k := range []int{4, maxBatchItems} {
		ctx, cancel := context.WithCancel(context.Background())
		f := &windowStream{ctx: ctx, allow: make(chan struct{}), publishes: k}
		ended := make(chan error, 1)
		go func() { ended <- srv.PublishStream(f) }()
		for answered := 0; answered < 3*publishWindow; answered += k {
			waitFor(t, fmt.Sprintf("%d publishes a request: the server reads past %d publishes", k, answered+publishWindow-k), func() bool {
				read, _, _ := f.counts()
				return read > answered+publishWindow-k
			})
			f.allow <- struct{}{}
		}
		cancel()
		<-ended
		if _, _, ahead := f.counts(); ahead != publishWindow-k {
			t.Fatalf("%d publishes a request: the most publishes unanswered when the server read another request: %d, want %d", k, ahead, publishWindow-k)
		}
	}
}
