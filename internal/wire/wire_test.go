package wire_test

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

func TestBatchOfSharedEntriesDecodesAsOneResponse(t *testing.T) {
	msgs := []*roomcastv1.Message{
		{Room: "a", Offset: 1, Payload: &roomcastv1.Message_Text{Text: "one"}},
		{Room: "a", Offset: 2, Payload: &roomcastv1.Message_Data{Data: []byte{0, 1, 2}}, Headers: map[string]string{"k": "v"}},
	}
	ev := &roomcastv1.PresenceEvent{Room: "a", Kind: roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_JOIN, Offset: 2}
	var entries mem.BufferSlice
	n := 0
	for _, m := range msgs {
		b, err := wire.MessageEntry(m)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, mem.SliceBuffer(b))
		n += len(b)
	}
	b, err := wire.PresenceEntry(ev)
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, mem.SliceBuffer(b))
	n += len(b)
	frame := append(mem.BufferSlice{wire.BatchHeader(n)}, entries...)

	var got roomcastv1.SubscribeResponse
	if err := proto.Unmarshal(frame.Materialize(), &got); err != nil {
		t.Fatal(err)
	}
	want := &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Batch{Batch: &roomcastv1.MessageBatch{Messages: msgs, Presence: []*roomcastv1.PresenceEvent{ev}}}}
	if !proto.Equal(want, &got) {
		t.Errorf("got %v, want %v", &got, want)
	}

	var h roomcastv1.HistoryResponse
	if err := proto.Unmarshal(wire.History(entries[:2], 2, "E").Materialize(), &h); err != nil {
		t.Fatal(err)
	}
	wantH := &roomcastv1.HistoryResponse{Messages: msgs, Offset: 2, Epoch: "E"}
	if !proto.Equal(wantH, &h) {
		t.Errorf("got %v, want %v", &h, wantH)
	}
}

func TestMessageEntryAtAddsTheOffsetWithoutEncodingAgain(t *testing.T) {
	m := &roomcastv1.Message{Room: "r", PublisherSession: "S", Payload: &roomcastv1.Message_Text{Text: "hi"}}
	body, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint64{0, 1, 300, 1<<64 - 1} {
		b := wire.MessageEntryAt(body, off)
		var got roomcastv1.MessageBatch
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(m).(*roomcastv1.Message)
		want.Offset = off
		if len(got.GetMessages()) != 1 || !proto.Equal(got.GetMessages()[0], want) {
			t.Errorf("offset %d: got %v, want %v", off, got.GetMessages(), want)
		}
	}
}

// A batch header is the same whether it is made or kept, on either side of
// the sizes kept, and from goroutines asking at once.
func TestBatchHeaderKeptIsTheSame(t *testing.T) {
	want := func(n int) []byte {
		field := (&roomcastv1.SubscribeResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()
		b := protowire.AppendTag(nil, field, protowire.BytesType)
		return protowire.AppendVarint(b, uint64(n))
	}
	sizes := []int{0, 1, 127, 128, 1040, 8<<10 - 1, 8 << 10, 1 << 20}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2 { // made, then kept
				for _, n := range sizes {
					if got := wire.BatchHeader(n).ReadOnlyData(); !bytes.Equal(got, want(n)) {
						t.Errorf("BatchHeader(%d) = %x, want %x", n, got, want(n))
					}
				}
			}
		})
	}
	wg.Wait()
}

// A PresenceResponse made of members' entries and a total decodes as one,
// and an entry holds its Member as a PresenceEvent carries it.
func TestPresenceOfSharedEntriesDecodesAsOneResponse(t *testing.T) {
	members := []*roomcastv1.Member{
		{SessionId: "A", Info: map[string]string{"name": "ann"}},
		{SessionId: "B", JoinTime: &timestamppb.Timestamp{Seconds: 7}},
	}
	var entries []mem.Buffer
	for _, m := range members {
		b, err := wire.MemberEntry(m)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, mem.SliceBuffer(b))
	}
	for _, total := range []uint32{0, 2, 1<<32 - 1} {
		var got roomcastv1.PresenceResponse
		if err := proto.Unmarshal(wire.Presence(slices.Clone(entries), total).Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		if want := (&roomcastv1.PresenceResponse{Members: members, Total: total}); !proto.Equal(want, &got) {
			t.Errorf("got %v, want %v", &got, want)
		}
	}
	var batch roomcastv1.MessageBatch // of the one event
	if err := proto.Unmarshal(wire.PresenceEntryFrom("r", roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_JOIN, wire.Member(entries[0].ReadOnlyData()), 3), &batch); err != nil {
		t.Fatal(err)
	}
	if ev := batch.GetPresence(); len(ev) != 1 || !proto.Equal(ev[0].GetMember(), members[0]) {
		t.Errorf("the event: %v, want one of member %v", ev, members[0])
	}
}
