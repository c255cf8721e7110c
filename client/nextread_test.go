package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/client"
)

// A Next whose context is the subscription's reads the stream itself and
// keeps it between calls; a command sent meanwhile must still get its
// reply, and the messages left in the stream must follow in order.
func TestCommandRepliesWhileNextKeepsStream(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "busy")
	last := lease(t, ctx, c, sub, "busy")
	n := last + 200
	for i := last + 1; i <= n; i++ {
		publishText(t, ctx, c, "busy", fmt.Sprint(i))
	}
	if _, err := sub.Join(ctx, "quiet"); err != nil {
		t.Fatalf("join while no Next reads: %v", err)
	}
	if err := sub.Leave(ctx, "quiet"); err != nil {
		t.Fatalf("leave while no Next reads: %v", err)
	}
	for i := last + 1; i <= n; i++ {
		if m := next(t, ctx, sub); m.GetText() != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", m.GetText(), i)
		}
	}
}

// A Next with a context of its own cannot read the stream itself; after a
// Next that kept the stream, it must have the receiver read for it.
func TestNextWithOtherContextAfterOwn(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat")
	for range 3 {
		last := lease(t, ctx, c, sub, "chat")
		other, cancel := context.WithCancel(ctx)
		got := make(chan *client.Event, 1)
		go func() {
			ev, err := sub.Next(other)
			if err != nil {
				t.Errorf("Next with a context of its own: %v", err)
			}
			got <- ev
		}()
		publishText(t, ctx, c, "chat", "other")
		ev := <-got
		cancel()
		if ev == nil || ev.Message.GetText() != "other" {
			t.Fatalf("after message %d, got %v, want \"other\"", last, ev)
		}
	}
}

// Next calls from several goroutines, some reading the stream themselves
// and one waiting for the receiver, share the messages: each is delivered
// once.
func TestConcurrentNextCallers(t *testing.T) {
	const n = 2000
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat")
	other, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu   sync.Mutex
		seen = make(map[uint64]bool)
		all  = make(chan struct{})
		wg   sync.WaitGroup
	)
	for i := range 3 {
		nctx := ctx
		if i == 2 {
			nctx = other
		}
		wg.Go(func() {
			for {
				ev, err := sub.Next(nctx)
				if err != nil {
					if !errors.Is(err, client.ErrClosed) && !errors.Is(err, context.Canceled) {
						t.Errorf("Next: %v", err)
					}
					return
				}
				mu.Lock()
				off := ev.Message.GetOffset()
				if seen[off] {
					t.Errorf("offset %d delivered twice", off)
				}
				seen[off] = true
				if len(seen) == n {
					close(all)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		publishText(t, ctx, c, "chat", fmt.Sprint(i))
	}
	select {
	case <-all:
	case <-ctx.Done():
		mu.Lock()
		t.Errorf("%d of %d messages delivered", len(seen), n)
		mu.Unlock()
	}
	cancel()
	sub.Close()
	wg.Wait()
}

// lease publishes to room and receives with Next, waiting for each message
// before it is published, until a Next has read the stream itself and kept
// it. It returns the text of the last message, a number counting from 0.
func lease(t *testing.T, ctx context.Context, c *client.Client, sub *client.Subscription, room string) int {
	t.Helper()
	for i := range 1000 {
		got := make(chan *client.Event, 1)
		go func() {
			ev, err := sub.Next(ctx)
			if err != nil {
				t.Errorf("Next: %v", err)
			}
			got <- ev
		}()
		publishText(t, ctx, c, room, fmt.Sprint(i))
		if ev := <-got; ev == nil || ev.Message.GetText() != fmt.Sprint(i) {
			t.Fatalf("got %v, want message %d", ev, i)
		}
		if client.Leased(sub) {
			return i
		}
	}
	t.Fatal("no Next read the stream itself")
	return 0
}

// A subscription ended while a Next reads the stream itself must close:
// the Next may still get a message once the stream's context has ended,
// and must then hand the stream back to the receiver, which waits to read
// it to its end (Close hung forever when that Next kept the stream).
func TestEndWhileNextReads(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	pub := dial(t, addr)
	stopPub := make(chan struct{})
	var pubs sync.WaitGroup
	pubs.Go(func() {
		for {
			select {
			case <-stopPub:
				return
			default:
			}
			if _, err := pub.Publish(ctx, "flow", []byte("m")); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	})
	defer func() { close(stopPub); pubs.Wait() }()
	for i := range 200 {
		subCtx, cancel := context.WithCancel(ctx)
		sub, err := c.Subscribe(subCtx, "flow")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for range 3 {
			if _, err := sub.Next(subCtx); err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
		}
		read, reading := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(read)
			for n := 0; ; n++ {
				if n == 20 {
					close(reading)
				}
				if _, err := sub.Next(subCtx); err != nil {
					return
				}
			}
		}()
		select { // the Next calls read the stream as messages flow
		case <-reading:
		case <-read:
			t.Fatalf("iteration %d: Next failed before the subscription ended", i)
		}
		cancel()
		<-read
		closed := make(chan struct{})
		go func() { sub.Close(); close(closed) }()
		select {
		case <-closed:
		case <-ctx.Done():
			t.Fatalf("iteration %d: Close did not return", i)
		}
	}
}
