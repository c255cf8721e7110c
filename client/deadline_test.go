package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/server"
)

// publishSeen is what the server saw of a unary Publish: whether its
// context had a deadline, and its error once the call was held until the
// test let it go.
type publishSeen struct {
	room     string
	deadline bool
	ended    error
}

// startWatchingPublishes starts a server that reports each Publish to
// seen, holding the ones to room "held" until their context ends or
// release is closed.
func startWatchingPublishes(t *testing.T, release <-chan struct{}) (string, <-chan publishSeen) {
	seen := make(chan publishSeen, 16)
	watch := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		r, ok := req.(*roomcastv1.PublishRequest)
		if !ok {
			return handler(ctx, req)
		}
		_, deadline := ctx.Deadline()
		if r.GetRoom() == "held" { // until the call ends, or the test does
			select {
			case <-ctx.Done():
			case <-release:
			}
		}
		seen <- publishSeen{room: r.GetRoom(), deadline: deadline, ended: ctx.Err()}
		return handler(ctx, req)
	}
	_, addr := start(t, server.WithGRPCOptions(grpc.ChainUnaryInterceptor(watch)))
	return addr, seen
}

// A unary Publish whose context has a deadline leaves it out of the call
// (see deadline.go): the server arms no timers for it.
func TestPublishSendsNoDeadline(t *testing.T) {
	addr, seen := startWatchingPublishes(t, nil)
	ctx := testCtx(t) // with a deadline
	c := dial(t, addr)
	publishText(t, ctx, c, "chat", "x")
	if s := <-seen; s.deadline {
		t.Error("the server's call has a deadline: the client sent grpc-timeout")
	}
}

// A Publish still ends at its deadline, with DeadlineExceeded as before,
// and the server's call is canceled then, as a reset stream.
func TestPublishEndsAtItsDeadline(t *testing.T) {
	release := make(chan struct{})
	addr, seen := startWatchingPublishes(t, release)
	c := dial(t, addr)
	publishText(t, testCtx(t), c, "warm", "x") // connected, so the deadline is all the held call waits for
	<-seen
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	defer close(release)
	_, err := c.PublishText(ctx, "held", "x")
	if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want context.DeadlineExceeded with code DeadlineExceeded", err)
	}
	if s := <-seen; !errors.Is(s.ended, context.Canceled) {
		t.Errorf("the server's call ended with %v, want it canceled by the client", s.ended)
	}
}

// A Publish whose deadline has passed is not sent.
func TestPublishPastItsDeadline(t *testing.T) {
	addr, seen := startWatchingPublishes(t, nil)
	c := dial(t, addr)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.PublishText(ctx, "chat", "x"); !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want context.DeadlineExceeded with code DeadlineExceeded", err)
	}
	publishText(t, testCtx(t), c, "after", "x")
	if s := <-seen; s.room != "after" {
		t.Errorf("the server saw a publish to %q first, want only the one to \"after\"", s.room)
	}
}
