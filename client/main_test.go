package client_test

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a server on a loopback port for the test's duration.
func start(t testing.TB, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	return servertest.Start(t, opts...)
}

// dial returns a client closed at the end of the test.
func dial(t testing.TB, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// testCtx is the test's deadline for anything it waits on.
func testCtx(t testing.TB) context.Context { return servertest.Context(t) }

// subscribe opens a subscription closed at the end of the test.
func subscribe(t testing.TB, ctx context.Context, c *client.Client, rooms ...string) *client.Subscription {
	t.Helper()
	sub, err := c.Subscribe(ctx, rooms...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", rooms, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// next returns the subscription's next event, which must be a message.
func next(t testing.TB, ctx context.Context, sub *client.Subscription) *client.Message {
	t.Helper()
	ev := nextEvent(t, ctx, sub)
	if ev.Message == nil {
		t.Fatalf("got event %s, want a message", describe(ev))
	}
	return ev.Message
}

// nextEvent returns the subscription's next event.
func nextEvent(t testing.TB, ctx context.Context, sub *client.Subscription) *client.Event {
	t.Helper()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// describe formats an event for test messages.
func describe(ev *client.Event) string {
	switch {
	case ev.Message != nil:
		return fmt.Sprintf("message %s/%d %q", ev.Message.GetRoom(), ev.Message.GetOffset(), ev.Message.GetText())
	case ev.Gap != nil:
		return fmt.Sprintf("gap %+v", *ev.Gap)
	case ev.Disconnected != nil:
		return fmt.Sprintf("disconnected: %v", ev.Disconnected.Err)
	case ev.Reconnected != nil:
		return fmt.Sprintf("reconnected %+v", *ev.Reconnected)
	case ev.Revoked != nil:
		return fmt.Sprintf("revoked %q", ev.Revoked.Rooms)
	}
	return "empty event"
}

func publishText(t testing.TB, ctx context.Context, c *client.Client, room, text string, opts ...client.PublishOption) uint64 {
	t.Helper()
	off, err := c.PublishText(ctx, room, text, opts...)
	if err != nil {
		t.Fatalf("PublishText to %s: %v", room, err)
	}
	return off
}
