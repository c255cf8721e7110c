package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// benchFrame is a batch of n messages of a chat-sized text body, encoded
// once as the broker does.
func benchFrame(b *testing.B, n, body int) *frame {
	bufs := mem.BufferSlice{nil}
	total := 0
	for i := range n {
		e, err := wire.MessageEntry(&roomcastv1.Message{
			Room: "chat.lobby", Offset: uint64(i + 1), ContentType: "application/json",
			Payload:     &roomcastv1.Message_Text{Text: `{"user":"ada","text":"` + strings.Repeat("x", body) + `"}`},
			PublishTime: timestamppb.New(time.Unix(1_790_000_000, int64(i))),
		})
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, mem.SliceBuffer(e))
		total += len(e)
	}
	bufs[0] = wire.BatchHeader(total)
	return &frame{bufs: bufs}
}

// BenchmarkWatch measures what a web Watch's codec costs per delivery (one
// message to one subscriber), binary against JSON, in batches of 1 and 16
// messages. Everything else on the path (the envelope, the HTTP write) is
// the same for both. "json" is a subscriber's cost once the message's
// fragment is cached, as it is for all but the first JSON subscriber of a
// room; "json-render" is the rendering each message costs once, whatever
// its JSON subscribers (its ns/delivery is per message).
func BenchmarkWatch(b *testing.B) {
	for _, batch := range []int{1, 16} {
		f := benchFrame(b, batch, 80)
		deliveries := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/delivery")
		}
		sent := func(b *testing.B, out []byte) { // what one delivery puts on the wire
			b.ReportMetric(float64(len(out))/float64(batch), "bytes/delivery")
		}
		b.Run(fmt.Sprintf("binary/batch=%d", batch), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				out, err := webProtoCodec{}.MarshalAppend(buf[:0], f)
				if err != nil {
					b.Fatal(err)
				}
				buf = out
			}
			deliveries(b)
			sent(b, buf)
		})
		b.Run(fmt.Sprintf("json/batch=%d", batch), func(b *testing.B) {
			c := webJSONCodec{name: "json", cache: newFragmentCache(defaultFragmentCacheBytes)}
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				out, err := c.MarshalAppend(buf[:0], f)
				if err != nil {
					b.Fatal(err)
				}
				buf = out
			}
			deliveries(b)
			sent(b, buf)
		})
		b.Run(fmt.Sprintf("json-render/batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, e := range f.bufs[1:] {
					if _, err := renderEntry(e.ReadOnlyData()); err != nil {
						b.Fatal(err)
					}
				}
			}
			deliveries(b)
		})
	}
}
