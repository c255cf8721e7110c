package server_test

import (
	"bytes"
	"fmt"
	"testing"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The server reads requests into buffers it does not clear: batches that
// span several HTTP/2 frames, each larger or smaller than the one before
// (so a buffer that held a larger one serves a smaller one), reach the
// room byte for byte, in order, and none carries bytes of another.
func TestPublishStreamBatchesSpanningFramesArriveIntact(t *testing.T) {
	_, addr := start(t)
	ctx := testCtx(t)
	c := dial(t, addr)
	sub := subscribe(t, ctx, c, "frames")
	stream := openPublishStream(t, ctx, c)
	var sent [][]byte
	// Batches of 120, 40, 90 and 20 KiB: 16 KiB frames each, several
	// pooled sizes.
	for round, items := range []int{30, 10, 45, 5} {
		size := 4 << 10
		if round == 2 {
			size = 2 << 10
		}
		var req *roomcastv1.PublishStreamRequest
		for i := range items {
			data := bytes.Repeat([]byte{byte('a' + (round*7+i)%26)}, size-i) // each of its own length and byte
			sent = append(sent, data)
			item := &roomcastv1.PublishStreamItem{Id: fmt.Sprint(round, ".", i), Publish: &roomcastv1.PublishRequest{Room: "frames", Payload: &roomcastv1.PublishRequest_Data{Data: data}}}
			if req == nil {
				req = &roomcastv1.PublishStreamRequest{Id: item.Id, Publish: item.Publish}
			} else {
				req.Batch = append(req.Batch, item)
			}
		}
		for _, a := range answers(sendRecv(t, stream, req)) {
			if a.ok == nil {
				t.Fatalf("round %d: publish %s refused: %v", round, a.id, a.err)
			}
		}
	}
	for i, want := range sent {
		m := sub.next()
		if m.GetOffset() != uint64(i+1) || !bytes.Equal(m.GetData(), want) {
			t.Fatalf("message %d: offset %d, %d bytes starting %q; want %d bytes of %q", i, m.GetOffset(), len(m.GetData()), m.GetData()[:min(len(m.GetData()), 8)], len(want), want[:1])
		}
	}
}
