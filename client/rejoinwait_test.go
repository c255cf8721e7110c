package client_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/testsupport/faultproxy"
	"github.com/roomcast/roomcast/server"
)

// slowRejoin subscribes to r0 and r1 under a credential rate of a command
// every 20 s, with a burst of 3, through a proxy, and cuts the stream: the
// new stream's rejoin of r0 takes the last token, and that of r1 is refused
// and waits about 20 s to be sent again. It returns once it waits, with the
// proxy and the server's address, for publishing. (The rate's advice to
// each later refusal is a token's time later than the one before: a second
// refused rejoin would be told 40 s, past what a rejoin may wait.)
func slowRejoin(t *testing.T, ctx context.Context) (*client.Subscription, *faultproxy.Proxy, string) {
	t.Helper()
	_, addr := start(t, server.WithCommandRate(0, 0), server.WithCredentialCommandRate(0.05, 3))
	p := faultproxy.Start(t, addr)
	sub := subscribe(t, ctx, dial(t, p.Addr(), fastBackoff), "r0", "r1")
	p.Sever()
	awaitRejoinWaiting(t, ctx, sub)
	return sub, p, addr
}

// awaitRejoinWaiting polls until a rejoin of sub waits to be sent again.
func awaitRejoinWaiting(t *testing.T, ctx context.Context, sub *client.Subscription) {
	t.Helper()
	until(t, ctx, 0, "no refused rejoin waits to be sent again", func() bool { return client.RejoinsWaiting(sub) > 0 })
}

// until polls cond every millisecond until it holds, failing with what
// once ctx is done, or once within has passed if it is not 0.
func until(t *testing.T, ctx context.Context, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, within)
		defer cancel()
	}
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-ctx.Done():
			t.Fatal(what)
		}
	}
}

// While a refused rejoin waits for the rate, the subscription reads its
// stream, whether or not a Next of its own waits (Events' kind, which does
// not read a stream still rejoining), and stages what the rooms already
// rejoined deliver up to the limit: past 4 MiB of payload it gives the
// stream up and reconnects, well before the 20 s the refusal advised, and
// before the server's write timeout (10 s) would cut a stream nobody
// reads.
func TestRejoinsWaitingForTheRateStageABoundedBacklog(t *testing.T) {
	for _, reader := range []string{"none", "a Next of its own"} {
		t.Run(reader, func(t *testing.T) {
			ctx := testCtx(t)
			sub, _, addr := slowRejoin(t, ctx)
			if reader != "none" {
				stopped := make(chan struct{})
				defer func() { sub.Close(); <-stopped }()
				go func() {
					defer close(stopped)
					for {
						if _, err := sub.Next(ctx); err != nil {
							return
						}
					}
				}()
			}
			session := sub.SessionID()
			pub := dial(t, addr)
			payload := bytes.Repeat([]byte("x"), 1<<20-1<<10)
			for range 5 { // 5 MiB, past the 4 MiB a rejoin may stage
				if _, err := pub.Publish(ctx, "r0", payload); err != nil {
					t.Fatal(err)
				}
			}
			until(t, ctx, 5*time.Second, "the subscription still waits on a stream that staged 5 MiB",
				func() bool { return sub.SessionID() != session })
		})
	}
}

// Leaving a room whose rejoin waits for the rate succeeds at once, sends
// nothing, and lets the rejoin end without it: Reconnected lists the other
// rooms.
func TestLeavingARoomWhoseRejoinWaitsForTheRate(t *testing.T) {
	ctx := testCtx(t)
	sub, _, _ := slowRejoin(t, ctx)
	if err := sub.Leave(ctx, "r1"); err != nil {
		t.Fatalf("Leave of a room whose rejoin waits: %v", err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second) // the refusal advised 20 s
	defer cancel()
	for {
		ev, err := sub.Next(waitCtx)
		if err != nil {
			t.Fatalf("waiting for Reconnected: %v", err)
		}
		if rc := ev.Reconnected; rc != nil {
			if len(rc.Rooms) != 1 || rc.Rooms[0].Room != "r0" {
				t.Errorf("reconnected with %+v, want r0 alone", rc.Rooms)
			}
			return
		}
	}
}

// A room left while its join waits for its reply is left on the server
// too once the join goes through, whichever of the two commands the
// subscription's goroutines send first: the Leave succeeds, and the room
// can be joined again.
func TestLeavingARoomWhileItsJoinIsUnderWay(t *testing.T) {
	ctx := testCtx(t)
	_, addr := start(t)
	sub := subscribe(t, ctx, dial(t, addr))
	for i := range 200 {
		joined := make(chan error, 1)
		go func() {
			_, err := sub.Join(ctx, "r")
			joined <- err
		}()
		for len(sub.Rooms()) == 0 { // the join is registered: leave it at once
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
		}
		if err := sub.Leave(ctx, "r"); err != nil {
			t.Fatalf("round %d: Leave while the join is under way: %v", i, err)
		}
		if err := <-joined; err != nil && status.Code(err) != codes.Aborted {
			t.Fatalf("round %d: Join: %v", i, err)
		}
		if _, err := sub.Join(ctx, "r"); err != nil {
			t.Fatalf("round %d: joining the room again: %v", i, err)
		}
		if err := sub.Leave(ctx, "r"); err != nil {
			t.Fatal(err)
		}
	}
}
