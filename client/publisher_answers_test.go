package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/roomcast/roomcast/client"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// misanswer makes the server answer the third message of the first response
// that carries at least three with another id, as a server that lost track
// of the order would.
func misanswer() (grpc.ServerOption, *atomic.Bool) {
	var done atomic.Bool
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &misanswering{ServerStream: ss, done: &done})
	}), &done
}

type misanswering struct {
	grpc.ServerStream
	done *atomic.Bool
}

func (s *misanswering) SendMsg(m any) error {
	if resp, ok := m.(*roomcastv1.PublishStreamResponse); ok && len(resp.GetBatch()) >= 2 && s.done.CompareAndSwap(false, true) {
		resp.Batch[1].Id = "not-" + resp.Batch[1].Id
	}
	return s.ServerStream.SendMsg(m)
}

// An answer out of order inside a batch ends the stream: the answers before
// it are delivered, the message it names wrongly and every later one fail
// with ErrUnavailable (none of them hangs), and the Publisher goes on on a
// new stream.
func TestPublisherAnswerOutOfOrderInABatch(t *testing.T) {
	opt, done := misanswer()
	_, addr := start(t, server.WithGRPCOptions(opt))
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr, fastBackoff))
	const n = 2000
	calls := make([]*client.PublishCall, n)
	for i := range calls {
		calls[i] = p.PublishTextAsync(ctx, "r", fmt.Sprint(i))
	}
	failed, last := 0, uint64(0)
	for i, call := range calls {
		off, _, err := call.Wait(ctx)
		switch {
		case err == nil && failed == 0 && off == last+1:
			last = off
		case err == nil && failed == 0:
			t.Fatalf("message %d: offset %d after %d", i, off, last)
		case errors.Is(err, client.ErrUnavailable):
			failed++
		case err != nil:
			t.Fatalf("message %d: %v, want ErrUnavailable", i, err)
		}
	}
	if !done.Load() || failed == 0 {
		t.Fatalf("out-of-order answer sent %v, %d messages failed: want it sent and some failed", done.Load(), failed)
	}
	// Every place of the window came back: twice the window's messages on
	// the next stream, each answered.
	after := make([]*client.PublishCall, 2*client.DefaultMaxInFlight)
	for i := range after {
		after[i] = p.PublishTextAsync(ctx, "r", "after")
	}
	for i, call := range after {
		if _, _, err := call.Wait(ctx); err != nil {
			t.Fatalf("message %d on the next stream: %v", i, err)
		}
	}
}

// Calls that give up waiting (their context ends first) leave their
// message's answer to come later; the calls after them, on the same
// Publisher, each get their own answer: every offset answered is distinct
// and each goroutine's increase.
func TestPublisherAbandonedCallsKeepAnswersApart(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	const goroutines, each = 32, 100
	var mu sync.Mutex
	seen := map[uint64]bool{}
	increasingOffsets(t, goroutines, each, func(g, i int) (uint64, bool, error) {
		if i%3 == 0 { // abandoned: its answer still comes, to no one
			gone, cancel := context.WithCancel(ctx)
			call := p.PublishTextAsync(ctx, "r", "abandoned")
			cancel()
			if _, _, err := call.Wait(gone); err != nil && !errors.Is(err, context.Canceled) {
				return 0, false, fmt.Errorf("abandoned call: %v", err)
			}
			return 0, false, nil
		}
		off, _, err := p.PublishText(ctx, "r", fmt.Sprint(g, "/", i))
		if err == nil {
			mu.Lock()
			if seen[off] {
				err = fmt.Errorf("offset %d answered twice", off)
			}
			seen[off] = true
			mu.Unlock()
		}
		return off, true, err
	})
}

// heldAnswers makes the server hold every PublishStream response until
// release is closed.
func heldAnswers(release chan struct{}) server.Option {
	return server.WithGRPCOptions(grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &holdingStream{ServerStream: ss, release: release})
	}))
}

type holdingStream struct {
	grpc.ServerStream
	release chan struct{}
}

func (s *holdingStream) SendMsg(m any) error {
	if _, ok := m.(*roomcastv1.PublishStreamResponse); ok {
		<-s.release
	}
	return s.ServerStream.SendMsg(m)
}

// A Publisher keeps at most DefaultMaxInFlight messages unanswered: the
// next call waits for a place (here until its context ends), and the
// answers free the places.
func TestPublisherWindow(t *testing.T) {
	release := make(chan struct{})
	_, addr := start(t, heldAnswers(release))
	ctx := testCtx(t)
	p := newPublisher(t, ctx, dial(t, addr))
	calls := make([]*client.PublishCall, client.DefaultMaxInFlight)
	for i := range calls {
		calls[i] = p.PublishTextAsync(ctx, "r", fmt.Sprint(i))
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	extra := p.PublishTextAsync(short, "r", "one too many")
	if _, _, err := extra.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a message past the window, none answered: %v, want it to wait until its context ends", err)
	}
	close(release)
	for i, call := range calls {
		if off, _, err := call.Wait(ctx); err != nil || off != uint64(i+1) {
			t.Fatalf("message %d: offset %d, %v", i, off, err)
		}
	}
	for i := range 2 * client.DefaultMaxInFlight { // every place was freed; the extra message was not sent
		if off, _, err := p.PublishText(ctx, "r", "after"); err != nil || off != uint64(len(calls)+1+i) {
			t.Fatalf("after the window: offset %d, %v; want %d", off, err, len(calls)+1+i)
		}
	}
}
