package wire_test

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// A large bytes payload is left where it is: the entry is a head and the
// payload itself, which decode as MessageEntry's bytes do. Smaller and text
// payloads are copied into one buffer, as MessageEntry does.
func TestMessageEntryPartsSharesALargePayload(t *testing.T) {
	big := bytes.Repeat([]byte{7}, wire.MinSharedPayload)
	for _, tc := range []struct {
		name   string
		m      *roomcastv1.Message
		shared bool
	}{
		{"large data", &roomcastv1.Message{Room: "r", Offset: 3, ContentType: "x/y", Headers: map[string]string{"k": "v"}, PublisherSession: "S", Payload: &roomcastv1.Message_Data{Data: big}}, true},
		{"small data", &roomcastv1.Message{Room: "r", Offset: 3, Payload: &roomcastv1.Message_Data{Data: big[:wire.MinSharedPayload-1]}}, false},
		{"large text", &roomcastv1.Message{Room: "r", Offset: 3, Payload: &roomcastv1.Message_Text{Text: string(big)}}, false},
		{"no payload", &roomcastv1.Message{Room: "r", Offset: 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(tc.m)
			whole, err := wire.MessageEntry(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			head, data, err := wire.MessageEntryParts(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(before, tc.m) {
				t.Fatalf("the message changed: %v", tc.m)
			}
			if !tc.shared {
				if data != nil || !bytes.Equal(head, whole) {
					t.Fatalf("got %d+%d bytes, want MessageEntry's %d in one", len(head), len(data), len(whole))
				}
				return
			}
			if len(data) != len(big) || &data[0] != &tc.m.GetData()[0] {
				t.Fatal("the payload was copied, not shared")
			}
			if len(head)+len(data) != len(whole) {
				t.Errorf("%d+%d bytes, MessageEntry's %d", len(head), len(data), len(whole))
			}
			entry := mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(data)}
			frame := append(mem.BufferSlice{wire.BatchHeader(entry.Len())}, entry...)
			var got roomcastv1.SubscribeResponse
			if err := proto.Unmarshal(frame.Materialize(), &got); err != nil {
				t.Fatal(err)
			}
			if msgs := got.GetBatch().GetMessages(); len(msgs) != 1 || !proto.Equal(msgs[0], tc.m) {
				t.Errorf("decoded %v", got.GetBatch())
			}
		})
	}
}
