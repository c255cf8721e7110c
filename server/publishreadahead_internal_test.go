package server

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/window"
)

// endlessPublisher is a PublishStream, as its reader sees it, whose
// publisher sends large requests without end and reads no answer.
type endlessPublisher struct {
	grpc.BidiStreamingServer[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse] // only what the reader calls is implemented
	ctx                                                                                         context.Context
	text                                                                                        string
	read                                                                                        atomic.Int64 // requests taken off the stream
}

func (p *endlessPublisher) Context() context.Context { return p.ctx }

func (p *endlessPublisher) RecvMsg(m any) error {
	p.read.Add(1)
	*m.(*roomcastv1.PublishStreamRequest) = roomcastv1.PublishStreamRequest{Id: "1", Publish: &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: p.text}}}
	return nil
}

// A PublishStream's reader holds at most its byte budget of requests read
// and not yet answered, however many publishes the window would let it
// read: with the handler stuck (its publisher reads no answers), it read
// on to the window, 256 requests of up to --max-message-bytes (a review
// held 130 MiB with one stream). Requests of 300 KB and a budget of 1 MiB:
// three are held, the fourth is read and waits for room.
func TestPublishStreamReaderHoldsAtMostItsBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	p := &endlessPublisher{ctx: ctx, text: strings.Repeat("x", 300_000)}
	const budget = publishReadAhead
	r := &publishReader{stream: p, reqs: make(chan readRequest, publishWindow), slots: window.New(publishWindow), bytes: window.New(budget), budget: budget}
	s := &Server{}
	s.goroutines.Add(1)
	done := make(chan struct{})
	go func() { r.read(s); close(done) }()
	for deadline := time.Now().Add(10 * time.Second); p.read.Load() < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("the reader read %d requests, want 4", p.read.Load())
		}
		select {
		case <-done:
			t.Fatalf("the reader ended after %d requests: %v", p.read.Load(), r.err)
		default:
			runtime.Gosched()
		}
	}
	cancel() // the reader waits for room until the stream ends
	<-done
	if n, held := p.read.Load(), len(r.reqs); n != 4 || held != 3 {
		t.Errorf("the reader read %d requests and handed on %d, want 4 and 3: it holds at most %d bytes", n, held, budget)
	}
}
