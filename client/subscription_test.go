package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/server"
)

func TestJoinReturnsRoomOffset(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	first := subscribe(t, ctx, c, "news") // keeps the room, and its offsets, alive
	for i := range 3 {
		publishText(t, ctx, c, "news", fmt.Sprint("before ", i))
	}

	late := subscribe(t, ctx, c)
	res, err := late.Join(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != 3 || res.Room != "news" || res.Epoch == "" || res.Recovered {
		t.Errorf("Join returned %+v, want offset 3 and an epoch", res)
	}
	publishText(t, ctx, c, "news", "after")
	if m := next(t, ctx, late); m.GetOffset() != 4 || m.GetText() != "after" {
		t.Errorf("late joiner got %v first, want offset 4", m)
	}
	if m := next(t, ctx, first); m.GetOffset() != 1 {
		t.Errorf("first subscriber got %v first, want offset 1", m)
	}
}

func TestSubscribeJoinErrorKeepsStatus(t *testing.T) {
	_, addr := start(t, server.WithMaxRoomsPerSession(2))
	ctx := testCtx(t)
	c := dial(t, addr)

	for _, tc := range []struct {
		rooms []string
		want  codes.Code
		op    string
	}{
		{[]string{"ok", "not ok"}, codes.InvalidArgument, `join "not ok"`},
		{[]string{"a", "b", "c"}, codes.ResourceExhausted, `join "c"`},
		{[]string{"a", "a"}, codes.AlreadyExists, `join "a"`},
		{[]string{"\xff"}, codes.InvalidArgument, `join "\xff"`},
	} {
		sub, err := c.Subscribe(ctx, tc.rooms...)
		if sub != nil || status.Code(err) != tc.want {
			t.Errorf("Subscribe(%q) = %v, %v; want code %v", tc.rooms, sub, err, tc.want)
			continue
		}
		st, ok := status.FromError(err)
		if !ok || st.Message() == "" || strings.HasPrefix(st.Message(), "roomcast:") {
			t.Errorf("Subscribe(%q): status.FromError = %v, %v; want the server's own message", tc.rooms, st, ok)
		}
		if !strings.Contains(err.Error(), tc.op) {
			t.Errorf("Subscribe(%q): error %q does not mention %s", tc.rooms, err, tc.op)
		}
	}
}

func TestJoinLeaveErrorsKeepStreamUp(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "a")

	_, err := sub.Join(ctx, "a")
	if !errors.Is(err, client.ErrAlreadyJoined) || status.Code(err) != codes.AlreadyExists {
		t.Errorf("second join: got %v, want ErrAlreadyJoined with code AlreadyExists", err)
	}
	err = sub.Leave(ctx, "b")
	if !errors.Is(err, client.ErrNotJoined) || status.Code(err) != codes.NotFound {
		t.Errorf("leave of a room not joined: got %v, want ErrNotJoined with code NotFound", err)
	}
	if err := sub.Leave(ctx, "bad room"); status.Code(err) != codes.InvalidArgument || errors.Is(err, client.ErrNotJoined) {
		t.Errorf("leave of a bad room: got %v, want code InvalidArgument", err)
	}
	if _, err := sub.Join(ctx, "b"); err != nil {
		t.Fatalf("join after failed commands: %v", err)
	}
	publishText(t, ctx, c, "b", "still up")
	if m := next(t, ctx, sub); m.GetText() != "still up" {
		t.Errorf("got %v", m)
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err() = %v on a live stream", err)
	}
}

func TestLeaveStopsDelivery(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "a", "b")
	keep := subscribe(t, ctx, c, "a") // keeps room a alive after the leave

	if err := sub.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	publishText(t, ctx, c, "a", "gone")
	publishText(t, ctx, c, "b", "here")
	if m := next(t, ctx, sub); m.GetRoom() != "b" || m.GetText() != "here" {
		t.Errorf("after leaving a, got %v first", m)
	}
	if m := next(t, ctx, keep); m.GetText() != "gone" {
		t.Errorf("other subscriber of a got %v", m)
	}
}

func TestMessagesInOrderAcrossBatches(t *testing.T) {
	const n = 1000
	_, addr := start(t, server.WithBrokerOptions(broker.WithBacklog(2*n, 64<<20)))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "x", "y")

	published := make(chan error, 1)
	go func() {
		for i := range n {
			room := "x"
			if i%3 == 0 {
				room = "y"
			}
			if _, err := c.PublishText(ctx, room, fmt.Sprint(i)); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	last := map[string]uint64{}
	got := 0
	for ev, err := range sub.Events() {
		if err != nil {
			t.Fatal(err)
		}
		m := ev.Message
		if m == nil {
			t.Fatalf("got %s", describe(ev))
		}
		if m.GetOffset() != last[m.GetRoom()]+1 {
			t.Fatalf("room %s: offset %d after %d", m.GetRoom(), m.GetOffset(), last[m.GetRoom()])
		}
		last[m.GetRoom()] = m.GetOffset()
		if got++; got == n {
			break
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	// Breaking out of the loop left the subscription open.
	publishText(t, ctx, c, "x", "more")
	for ev, err := range sub.Events() {
		if err != nil || ev.Message.GetText() != "more" {
			t.Errorf("after the loop: got %v, %v", ev, err)
		}
		break
	}
}

// While nobody reads messages, the queue fills up and the subscription stops
// reading the stream; a command must still get its reply.
func TestCommandRepliesWhileQueueIsFull(t *testing.T) {
	const n = 1000 // well past the queue, the transport's window and a batch
	_, addr := start(t,
		server.WithBrokerOptions(broker.WithBacklog(2*n, 64<<20)),
		server.WithWriteTimeout(time.Hour), // however slow the machine, the server waits
	)
	ctx := testCtx(t)
	c := dial(t, addr, smallWindows)
	sub := subscribe(t, ctx, c, "busy")
	payload := strings.Repeat("x", 512)
	for range n {
		publishText(t, ctx, c, "busy", payload)
	}

	if _, err := sub.Join(ctx, "quiet"); err != nil {
		t.Fatalf("join with a full queue: %v", err)
	}
	for i := uint64(1); i <= n; i++ {
		if m := next(t, ctx, sub); m.GetOffset() != i {
			t.Fatalf("got offset %d, want %d", m.GetOffset(), i)
		}
	}
	publishText(t, ctx, c, "quiet", "joined")
	if m := next(t, ctx, sub); m.GetText() != "joined" {
		t.Errorf("got %v", m)
	}
}

// smallWindows turns gRPC's dynamic flow-control windows off, so that a
// reader that stops holds the server up after 64 KiB in flight.
var smallWindows = client.WithDialOptions(grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))

func TestConcurrentCommands(t *testing.T) {
	const n = 32
	_, addr := start(t, server.WithMaxRoomsPerSession(n))
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			room := fmt.Sprint("room-", i)
			if _, err := sub.Join(ctx, room); err != nil {
				errs <- err
				return
			}
			if _, err := c.PublishText(ctx, room, room); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for range n {
		m := next(t, ctx, sub)
		if m.GetText() != m.GetRoom() || seen[m.GetRoom()] {
			t.Errorf("got %v", m)
		}
		seen[m.GetRoom()] = true
	}
}

// A server that shuts down ends the stream; the subscription says so and
// goes on trying to reconnect until it is closed.
func TestServerShutdownDisconnects(t *testing.T) {
	srv, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat")
	publishText(t, ctx, c, "chat", "last words")
	if m := next(t, ctx, sub); m.GetText() != "last words" {
		t.Fatalf("got %v", m)
	}

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, ctx, sub)
	if ev.Disconnected == nil {
		t.Fatalf("got %s, want a disconnection", describe(ev))
	}
	if err := ev.Disconnected.Err; status.Code(err) != codes.Unavailable || !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("disconnected with %v, want code Unavailable", err)
	}
	if err := sub.Err(); err != nil {
		t.Errorf("Err() = %v while reconnecting", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if ev, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next while the server is down: got %v, %v", ev, err)
	}
	if rooms := sub.Rooms(); len(rooms) != 1 || rooms[0] != "chat" {
		t.Errorf("Rooms() = %q while reconnecting", rooms)
	}
	sub.Close()
	if err := sub.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", err)
	}
	if _, err := sub.Join(ctx, "other"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Join after Close: got %v, want ErrClosed", err)
	}
}

// A subscriber that stops reading is cut off by the server; it reconnects
// and resumes after the last message it received, with no duplicate, or
// reports the gap if the server no longer has them.
func TestSlowSubscriberIsCutOffAndResumes(t *testing.T) {
	srv, addr := start(t, server.WithWriteTimeout(50*time.Millisecond))
	ctx := testCtx(t)
	c := dial(t, addr, smallWindows)
	sub := subscribe(t, ctx, c, "firehose")

	// Nobody reads: the subscription's queue (4 MiB) and the transport's
	// window fill up until one of the server's writes waits longer than its
	// write timeout.
	payload := make([]byte, 64<<10)
	var n uint64
	for srv.Broker().Stats().Lagged == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the server did not cut the subscriber off after %d messages", n)
		}
		if _, err := c.Publish(ctx, "firehose", payload); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// What was received before the cut-off is delivered, then the
	// disconnection, then the rest or a gap.
	var last uint64
	var disconnected, reconnected bool
	for last < n || !reconnected {
		ev := nextEvent(t, ctx, sub)
		switch {
		case ev.Message != nil:
			if ev.Message.GetOffset() != last+1 {
				t.Fatalf("got offset %d after %d", ev.Message.GetOffset(), last)
			}
			last++
		case ev.Disconnected != nil:
			if status.Code(ev.Disconnected.Err) != codes.ResourceExhausted {
				t.Fatalf("disconnected with %v, want code ResourceExhausted", ev.Disconnected.Err)
			}
			disconnected = true
		case ev.Reconnected != nil:
			if !disconnected || len(ev.Reconnected.Rooms) != 1 || ev.Reconnected.Rooms[0].From.Offset != last {
				t.Fatalf("reconnected %+v after offset %d", ev.Reconnected, last)
			}
			reconnected = true
		case ev.Gap != nil:
			if !reconnected || ev.Gap.LastDelivered.Offset != last || ev.Gap.Resumed.Offset < last {
				t.Fatalf("gap %+v after offset %d", ev.Gap, last)
			}
			last = ev.Gap.Resumed.Offset
		}
	}
	if !reconnected || last != n {
		t.Errorf("reconnected %v; last offset %d of %d", reconnected, last, n)
	}
}

func TestSubscribeContextEndsStream(t *testing.T) {
	_, addr := start(t)
	c := dial(t, addr)
	ctx, cancel := context.WithCancel(testCtx(t))
	sub := subscribe(t, ctx, c, "chat")
	cancel()
	for m, err := range sub.Events() {
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
			t.Errorf("got %v, %v; want context.Canceled with code Canceled", m, err)
		}
	}
	if err := sub.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() = %v, want context.Canceled", err)
	}
}

func TestNextContext(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "chat")

	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if _, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Next with nothing to read: got %v, want DeadlineExceeded", err)
	}
	publishText(t, ctx, c, "chat", "after a timeout")
	if m := next(t, ctx, sub); m.GetText() != "after a timeout" {
		t.Errorf("got %v", m)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Subscribe(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Subscribe(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}

	waiting := make(chan error, 1)
	go func() {
		_, err := a.Next(ctx)
		waiting <- err
	}()
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := <-waiting; !errors.Is(err, client.ErrClosed) {
		t.Errorf("Next waiting during Close: got %v, want ErrClosed", err)
	}
	if err := a.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", err)
	}
	if _, err := a.Join(ctx, "other"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Join after Close: got %v, want ErrClosed", err)
	}
	for m, err := range a.Events() {
		t.Errorf("Messages after Close yielded %v, %v", m, err)
	}

	// Closing the client closes its other subscriptions.
	if err := c.Close(); err != nil {
		t.Errorf("client Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second client Close: %v", err)
	}
	if err := b.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("subscription Err() after client Close = %v, want ErrClosed", err)
	}
	if _, err := c.PublishText(ctx, "chat", "x"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
	if _, err := c.Subscribe(ctx, "chat"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}
}
