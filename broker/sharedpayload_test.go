package broker_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A 1 MiB publish keeps its payload rather than copying it into the entry
// it retains: a flood of large messages (attack (b) of internal/attack)
// allocated and copied each one twice, once decoding the request and once
// here, and the garbage paced the collector. Subscribers and History still
// see the message whole.
func TestLargePayloadIsRetainedWithoutACopy(t *testing.T) {
	const size, n = 1 << 20, 20
	b := newBroker(t, broker.WithBacklog(n, 64<<20), broker.WithHistory(n, time.Hour))
	sub, _ := joinAt(t, b, "s", "big", nil)
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte{byte(i)}, size)
	}
	msgs := make([]*roomcastv1.Message, n)
	for i := range msgs {
		msgs[i] = &roomcastv1.Message{Room: "big", ContentType: "application/octet-stream", Payload: &roomcastv1.Message_Data{Data: payloads[i]}}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, m := range msgs {
		if _, _, err := b.Publish(context.Background(), m, ""); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > size/16 {
		t.Errorf("a 1 MiB publish allocated %d bytes: its payload was copied", per)
	}

	got := collect(t, sub, 64<<20)
	h := history(t, b, "big", 0, n, false).GetMessages()
	if len(got) != n || len(h) != n {
		t.Fatalf("the subscriber got %d messages and History %d, want %d", len(got), len(h), n)
	}
	for i := range n {
		want := &roomcastv1.Message{Room: "big", Offset: uint64(i + 1), ContentType: "application/octet-stream", Payload: &roomcastv1.Message_Data{Data: bytes.Repeat([]byte{byte(i)}, size)}}
		for _, m := range []*roomcastv1.Message{got[i], h[i]} {
			m.PublishTime = nil
			if !proto.Equal(m, want) {
				t.Fatalf("message %d: %d bytes of payload, offset %d", i, len(m.GetData()), m.GetOffset())
			}
		}
	}
	if st := b.Stats(); st.Retained < n*size || st.Delivered != n {
		t.Errorf("%d bytes retained for %d messages of %d, %d delivered", st.Retained, n, size, st.Delivered)
	}
}

// BenchmarkPublishLargePayload publishes 1 MiB messages into a room that
// keeps the last 8: what each costs the hub, whose entry shares the
// payload (compare B/op with the payload's size).
func BenchmarkPublishLargePayload(b *testing.B) {
	const size = 1 << 20
	h := newBroker(b, broker.WithBacklog(8, 64<<20), broker.WithHistory(8, time.Hour))
	payload := bytes.Repeat([]byte{1}, size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		m := &roomcastv1.Message{Room: "big", Payload: &roomcastv1.Message_Data{Data: payload}}
		if _, _, err := h.Publish(context.Background(), m, ""); err != nil {
			b.Fatal(err)
		}
	}
}
