package client

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// decodeSamples are SubscribeResponses of every kind, with messages using
// every field.
func decodeSamples() []*roomcastv1.SubscribeResponse {
	ts := &timestamppb.Timestamp{Seconds: 1_700_000_000, Nanos: 123_456_789}
	return []*roomcastv1.SubscribeResponse{
		{Event: &roomcastv1.SubscribeResponse_Session{Session: &roomcastv1.SessionEvent{SessionId: "s-1"}}},
		{Event: &roomcastv1.SubscribeResponse_Reply{Reply: &roomcastv1.CommandReply{Id: "7", Result: &roomcastv1.CommandReply_Join{Join: &roomcastv1.JoinResult{Offset: 9, Epoch: "e", Recovered: true}}}}},
		{Event: &roomcastv1.SubscribeResponse_Batch{Batch: &roomcastv1.MessageBatch{
			Messages: []*roomcastv1.Message{
				{Room: "chat.a", Offset: 1, Payload: &roomcastv1.Message_Data{Data: []byte("hello")}, ContentType: "application/octet-stream", PublishTime: ts, PublisherSession: "p-1"},
				{Room: "chat.a", Offset: 2, Payload: &roomcastv1.Message_Text{Text: "héllo"}, Headers: map[string]string{"k": "v", "trace": "abc", "": ""}, PublishTime: ts},
				{Room: "chat.b", Offset: 1 << 40, Payload: &roomcastv1.Message_Data{Data: []byte{}}},
				{Room: "chat.b", Offset: 3},
				{},
			},
			Presence: []*roomcastv1.PresenceEvent{{Room: "chat.a", Kind: roomcastv1.PresenceEventKind_PRESENCE_EVENT_KIND_JOIN, Member: &roomcastv1.Member{SessionId: "m", Info: map[string]string{"a": "b"}}, Offset: 2}},
		}}},
		{Event: &roomcastv1.SubscribeResponse_Batch{Batch: &roomcastv1.MessageBatch{}}},
		{},
	}
}

// asProto is r as a SubscribeResponse.
func (r *response) asProto() *roomcastv1.SubscribeResponse {
	switch {
	case r.session != nil:
		return &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Session{Session: r.session}}
	case r.reply != nil:
		return &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Reply{Reply: r.reply}}
	case r.batch:
		b := &roomcastv1.MessageBatch{}
		for _, ev := range r.msgs {
			b.Messages = append(b.Messages, ev.Message)
		}
		return &roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Batch{Batch: b}}
	}
	return &roomcastv1.SubscribeResponse{}
}

// checkDecode decodes b both ways and fails unless the fast path made what
// proto.Unmarshal makes, but for unknown fields and presence events, which
// it leaves out. Input proto.Unmarshal refuses is only decoded.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	var r response
	err := r.decode(b)
	want := new(roomcastv1.SubscribeResponse)
	if proto.Unmarshal(b, want) != nil {
		return
	}
	if err != nil {
		t.Fatalf("decode refused what proto.Unmarshal takes: %v\n%x", err, b)
	}
	if batch := want.GetBatch(); batch != nil {
		batch.Presence = nil
	}
	dropUnknown(want.ProtoReflect())
	got := r.asProto()
	dropUnknown(got.ProtoReflect()) // a session's or a reply's, which proto.Unmarshal decodes
	if !proto.Equal(got, want) {
		t.Fatalf("decoded\n%v\nproto.Unmarshal\n%v\ninput %x", got, want, b)
	}
	for _, ev := range r.msgs {
		if ev.Message == nil || ev.Gap != nil || ev.Disconnected != nil || ev.Reconnected != nil || ev.Revoked != nil {
			t.Fatalf("event %+v is not a message's", ev)
		}
	}
}

// dropUnknown removes the unknown fields of m and every message in it.
func dropUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				dropUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
				dropUnknown(v.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			dropUnknown(v.Message())
		}
		return true
	})
}

// The stream's codec decodes responses as proto.Unmarshal does, including
// fields repeated (merged) and events replacing each other.
func TestDecodeMatchesProto(t *testing.T) {
	samples := decodeSamples()
	var all []byte
	for _, m := range samples {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, b)
		checkDecode(t, append(b, b...))
		all = append(all, b...)
	}
	checkDecode(t, all)
	// Fields of other wire types than their own, and fields unknown.
	var msg []byte
	msg = protowire.AppendTag(msg, msgOffset, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 5)
	msg = protowire.AppendTag(msg, msgOffset, protowire.Fixed32Type)
	msg = protowire.AppendFixed32(msg, 7)
	msg = protowire.AppendTag(msg, msgText, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 3)
	msg = protowire.AppendTag(msg, 99, protowire.BytesType)
	msg = protowire.AppendString(msg, "later")
	msg = protowire.AppendTag(msg, msgPublishTime, protowire.BytesType)
	msg = protowire.AppendBytes(msg, protowire.AppendVarint(protowire.AppendTag(nil, tsNanos, protowire.Fixed64Type), 0))
	var batch []byte
	batch = protowire.AppendTag(batch, batchMessages, protowire.BytesType)
	batch = protowire.AppendBytes(batch, msg)
	batch = protowire.AppendTag(batch, 7, protowire.VarintType)
	batch = protowire.AppendVarint(batch, 1)
	var odd []byte
	odd = protowire.AppendTag(odd, respBatch, protowire.VarintType) // not the batch
	odd = protowire.AppendVarint(odd, 1)
	odd = protowire.AppendTag(odd, respBatch, protowire.BytesType)
	odd = protowire.AppendBytes(odd, batch)
	checkDecode(t, odd)
}

// A message owns its payload: reusing the buffer it was decoded from does
// not change it, nor does changing one message's payload change another's.
func TestDecodedPayloadIsTheMessages(t *testing.T) {
	b, err := proto.Marshal(decodeSamples()[2])
	if err != nil {
		t.Fatal(err)
	}
	var r response
	if err := r.decode(b); err != nil {
		t.Fatal(err)
	}
	first := r.msgs[0].Message
	for i := range b {
		b[i] = 0xff
	}
	if !bytes.Equal(first.GetData(), []byte("hello")) {
		t.Fatalf("payload changed with the buffer: %q", first.GetData())
	}
	r.reset()
	again, err := proto.Marshal(decodeSamples()[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := r.decode(again); err != nil {
		t.Fatal(err)
	}
	if r.msgs[0].Message == first {
		t.Fatal("a message was reused")
	}
	r.msgs[0].Message.GetData()[0] = 'j'
	if string(first.GetData()) != "hello" {
		t.Fatalf("another message's payload changed: %q", first.GetData())
	}
}

// Payloads of every size are decoded whole, each in bytes of its own whose
// capacity ends with it, so that appending to one cannot write over
// another's.
func TestDecodePayloadSizes(t *testing.T) {
	batch := &roomcastv1.MessageBatch{}
	for _, n := range []int{0, 1, 63, 64, 65, 255, 256, 257, 4096} {
		data := bytes.Repeat([]byte{byte(n)}, n)
		batch.Messages = append(batch.Messages, &roomcastv1.Message{Room: "r", Offset: uint64(n + 1), Payload: &roomcastv1.Message_Data{Data: data}})
	}
	b, err := proto.Marshal(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Batch{Batch: batch}})
	if err != nil {
		t.Fatal(err)
	}
	checkDecode(t, b)
	var r response
	if err := r.decode(b); err != nil {
		t.Fatal(err)
	}
	for i, ev := range r.msgs {
		want := batch.Messages[i].GetData()
		if got := ev.Message.GetData(); !bytes.Equal(got, want) || cap(got) != len(want) {
			t.Errorf("a payload of %d bytes: got %d bytes, capacity %d", len(want), len(got), cap(got))
		}
	}
}

// Strings are checked for UTF-8, as proto3 requires, wherever they are.
func TestDecodeRefusesInvalidUTF8(t *testing.T) {
	bad := []byte("\xff")
	entry := func(num protowire.Number) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), bad)
	}
	for name, field := range map[string][]byte{
		"room":         entry(msgRoom),
		"text":         entry(msgText),
		"content type": entry(msgContentType),
		"header key":   protowire.AppendBytes(protowire.AppendTag(nil, msgHeaders, protowire.BytesType), entry(entryKey)),
		"header value": protowire.AppendBytes(protowire.AppendTag(nil, msgHeaders, protowire.BytesType), entry(entryValue)),
		"publisher":    entry(msgPublisherSession),
	} {
		batch := protowire.AppendBytes(protowire.AppendTag(nil, batchMessages, protowire.BytesType), field)
		b := protowire.AppendBytes(protowire.AppendTag(nil, respBatch, protowire.BytesType), batch)
		if err := proto.Unmarshal(b, new(roomcastv1.SubscribeResponse)); err == nil {
			t.Fatalf("%s: proto.Unmarshal took invalid UTF-8", name)
		}
		var r response
		if err := r.decode(b); err == nil {
			t.Errorf("%s: decoded invalid UTF-8", name)
		}
	}
}

// FuzzDecodeResponse checks the stream's decoder against proto.Unmarshal.
func FuzzDecodeResponse(f *testing.F) {
	for _, m := range decodeSamples() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...))
	}
	f.Fuzz(checkDecode)
}

// BenchmarkDecodeBatch decodes a batch of 64 messages of 64 bytes, as a
// Subscribe stream's codec does ("stream") and with proto.Unmarshal, as it
// did before ("proto"), and reports the cost per message.
//
//	go test -run '^$' -bench BenchmarkDecodeBatch -benchmem -count 6 ./client/
func BenchmarkDecodeBatch(b *testing.B) {
	batch := &roomcastv1.MessageBatch{}
	for i := range 64 {
		batch.Messages = append(batch.Messages, &roomcastv1.Message{
			Room: "bench", Offset: uint64(i + 1), Payload: &roomcastv1.Message_Data{Data: make([]byte, 64)},
			PublishTime: timestamppb.Now(), PublisherSession: "publisher",
		})
	}
	wire, err := proto.Marshal(&roomcastv1.SubscribeResponse{Event: &roomcastv1.SubscribeResponse_Batch{Batch: batch}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stream", func(b *testing.B) {
		var r response
		b.ReportAllocs()
		for b.Loop() {
			r.reset()
			if err := r.decode(wire); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/message")
	})
	b.Run("proto", func(b *testing.B) {
		var evs []*Event
		b.ReportAllocs()
		for b.Loop() {
			resp := new(roomcastv1.SubscribeResponse)
			if err := proto.Unmarshal(wire, resp); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
			for _, m := range resp.GetBatch().GetMessages() {
				evs = append(evs, &Event{Message: m}) // what the subscription then allocated
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/message")
	})
}
