package client_test

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/server"
)

// Payloads of every size arrive whole and as published, each message's
// its own, while the connection's buffers are reused from one frame to
// the next: in a box of their own size class, past the largest class, and
// spanning HTTP/2 frames.
func TestPayloadsOfEverySizeArriveWhole(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "sizes")
	sizes := []int{0, 1, 64, 65, 300, 1000, 1024, 1025, 2048, 3000, 4096, 4097, 20_000, 70_000, 300_000}
	payload := func(i, n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		return b
	}
	for round := range 3 { // later rounds get buffers earlier ones gave back
		for i, n := range sizes {
			if _, err := c.Publish(ctx, "sizes", payload(round*len(sizes)+i, n)); err != nil {
				t.Fatalf("publish %d bytes: %v", n, err)
			}
		}
	}
	var got [][]byte
	for round := range 3 {
		for i, n := range sizes {
			data := next(t, ctx, sub).GetData()
			if want := payload(round*len(sizes)+i, n); !bytes.Equal(data, want) {
				t.Fatalf("round %d: a payload of %d bytes arrived as %d bytes, not as published", round, n, len(data))
			}
			if cap(data) != n {
				t.Fatalf("a payload of %d bytes has capacity %d: appending to it would write over memory it does not own", n, cap(data))
			}
			got = append(got, data)
		}
	}
	// Later frames have reused the pool's buffers by now: a payload that
	// pointed into one would have changed.
	for k, b := range got {
		if want := payload(k, sizes[k%len(sizes)]); !bytes.Equal(b, want) {
			t.Fatalf("payload %d changed after later messages arrived", k)
		}
	}
	for _, b := range got {
		for j := range b {
			b[j] = 0xff // the application's to change
		}
	}
	publishText(t, ctx, c, "sizes", "after")
	if m := next(t, ctx, sub); m.GetText() != "after" {
		t.Fatalf("got %q after changing the payloads", m.GetText())
	}
}

// Once a room is left, the messages of it still in the stream are
// dropped, even though it is the room of the last message looked up: the
// subscription must not keep delivering a room it left.
func TestLeaveDropsTheRoomOfTheLastMessage(t *testing.T) {
	const n = 1000 // well past the queue: most are still in the stream at the Leave
	_, addr := start(t,
		server.WithBrokerOptions(broker.WithBacklog(2*n, 64<<20)),
		server.WithWriteTimeout(time.Hour), // however slow the machine, the server waits
	)
	ctx := testCtx(t)
	c := dial(t, addr, smallWindows)
	sub := subscribe(t, ctx, c, "a", "b")
	payload := strings.Repeat("x", 512)
	for range n {
		publishText(t, ctx, c, "a", payload)
	}
	// The receiver stops reading once the queue is full: the rest of the
	// messages wait in the stream.
	for client.Queued(sub) < 256 {
		if ctx.Err() != nil {
			t.Fatalf("%d messages queued", client.Queued(sub))
		}
		runtime.Gosched()
	}
	queued := uint64(client.Queued(sub))
	if err := sub.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	publishText(t, ctx, c, "b", "here")
	var got uint64
	for {
		m := next(t, ctx, sub)
		if m.GetRoom() == "b" {
			break
		}
		if got++; m.GetOffset() != got {
			t.Fatalf("got offset %d of a, want %d", m.GetOffset(), got)
		}
	}
	if got != queued {
		t.Fatalf("%d messages of a delivered, but %d were queued when Leave was called", got, queued)
	}
	// Joined again, the room delivers from the new join on.
	if _, err := sub.Join(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	publishText(t, ctx, c, "a", "again")
	if m := next(t, ctx, sub); m.GetRoom() != "a" || m.GetText() != "again" {
		t.Fatalf("after joining a again, got %s/%q", m.GetRoom(), m.GetText())
	}
}
