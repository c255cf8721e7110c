package bench

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/broker"
	"github.com/roomcast/roomcast/client"
	"github.com/roomcast/roomcast/internal/servertest"
	"github.com/roomcast/roomcast/server"
)

// TestAsyncPublisher checks the bench's streaming publisher on a real
// server: every message queued is sequenced in the order queued with the
// payload it had when queued, though the caller reuses its buffer at once,
// and a refused message is reported as the publisher's failure, once
// close has waited for every answer.
func TestAsyncPublisher(t *testing.T) {
	const n = 3000 // well past the Publisher's window, and the payload buffers
	_, addr := servertest.Start(t, server.WithBrokerOptions(broker.WithHistory(2*n, time.Hour)))
	ctx := servertest.Context(t)
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pub, err := c.NewPublisher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	w := &worker{spec: spec{Payload: 64}}
	a := newAsyncPublisher(w, 7, pub)
	ok, bad := &room{name: "bench.async"}, &room{name: "bench..async"}
	payload := make([]byte, 64)
	for i := range n {
		binary.BigEndian.PutUint64(payload, uint64(i))
		r := ok
		if i == n/2 {
			r = bad
		}
		if err := a.publish(ctx, r, payload); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		clear(payload) // the caller's buffer is its own again
	}
	a.close()

	failures, failed := w.failureList()
	if failed != 1 || !strings.Contains(failures[0], "publisher 7 (bench..async)") {
		t.Errorf("failures %d: %q, want the one refused message's", failed, failures)
	}
	var msgs []*client.Message
	for {
		var after uint64
		if len(msgs) > 0 {
			after = msgs[len(msgs)-1].GetOffset()
		}
		page, err := c.History(ctx, ok.name, client.HistoryQuery{After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			break
		}
		msgs = append(msgs, page.Messages...)
	}
	if len(msgs) != n-1 {
		t.Fatalf("%d messages sequenced, want %d", len(msgs), n-1)
	}
	want := uint64(0)
	for _, m := range msgs {
		if want == n/2 {
			want++
		}
		if got := binary.BigEndian.Uint64(m.GetData()); got != want || len(m.GetData()) != 64 {
			t.Fatalf("message at offset %d has payload %d (%d bytes), want %d", m.GetOffset(), got, len(m.GetData()), want)
		}
		want++
	}
}
