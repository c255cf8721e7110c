package server

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/wire"
)

// trickyBatch returns a frame of entries whose bodies JSON must escape or
// encode with care, and the WatchResponse it stands for.
func trickyBatch(t testing.TB) (*frame, *roomcastv1.WatchResponse) {
	t.Helper()
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	at := timestamppb.New(time.Date(2026, 11, 29, 23, 0, 0, 123456789, time.UTC))
	msgs := []*roomcastv1.Message{
		{Room: "r", Offset: 1, Payload: &roomcastv1.Message_Data{Data: every}, PublishTime: at},
		{Room: "r", Offset: 2, Payload: &roomcastv1.Message_Text{Text: "héllo 世界 🎉 \u2028\u2029 \x00\x1f \"quoted\" \\ </script> \ufeff"}, ContentType: "text/plain; charset=utf-8"},
		{Room: "r", Offset: 3}, // no payload at all
		{Room: "r", Offset: 4, Payload: &roomcastv1.Message_Data{Data: []byte{}}},
		{Room: "r", Offset: 5, Payload: &roomcastv1.Message_Text{Text: ""}, Headers: map[string]string{"k": "v\n\t\"", "empty": "", "u": "ü"}, PublisherSession: "S1"},
		{Room: "r", Offset: 6, Payload: &roomcastv1.Message_Text{Text: strings.Repeat("long ", 20000)}},
		// its entry in two buffers, the payload shared (wire.MessageEntryParts)
		{Room: "r", Offset: 7, Payload: &roomcastv1.Message_Data{Data: []byte(strings.Repeat("large ", wire.MinSharedPayload/5))}, ContentType: "x/y"},
	}
	ev := &roomcastv1.PresenceEvent{Room: "r", Kind: roomcastv1.PresenceEventKind(1), Offset: 3,
		Member: &roomcastv1.Member{SessionId: "S2", Info: map[string]string{"name": "Zoë \"Z\""}, JoinTime: at}}
	bufs := mem.BufferSlice{nil}
	total := 0
	add := func(b []byte) {
		bufs = append(bufs, mem.SliceBuffer(b))
		total += len(b)
	}
	for i, m := range msgs {
		if i == 2 { // a presence event between messages, as a batch may hold
			b, err := wire.PresenceEntry(ev)
			if err != nil {
				t.Fatal(err)
			}
			add(b)
		}
		if i == 4 { // a message sequenced by an engine: its offset appended
			noOffset := proto.Clone(m).(*roomcastv1.Message)
			noOffset.Offset = 0
			body, err := proto.Marshal(noOffset)
			if err != nil {
				t.Fatal(err)
			}
			add(wire.MessageEntryAt(body, m.GetOffset()))
			continue
		}
		b, data, err := wire.MessageEntryParts(m)
		if err != nil {
			t.Fatal(err)
		}
		add(b)
		if data != nil {
			add(data)
		}
	}
	if len(bufs) != len(msgs)+3 {
		t.Fatalf("%d buffers for %d entries: no message's payload was shared", len(bufs)-1, len(msgs)+1)
	}
	bufs[0] = wire.BatchHeader(total)
	want := &roomcastv1.WatchResponse{Event: &roomcastv1.WatchResponse_Batch{Batch: &roomcastv1.MessageBatch{
		Messages: msgs, Presence: []*roomcastv1.PresenceEvent{ev},
	}}}
	return &frame{bufs: bufs}, want
}

// A batch rendered from cached JSON fragments is valid JSON of the
// WatchResponse the frame holds, whatever the bodies; the binary codec
// sends the frame's bytes, which decode to the same; and rendering the
// frame again renders no entry again.
func TestWebCodecsRenderTheFrameTheyAreGiven(t *testing.T) {
	f, want := trickyBatch(t)
	cache := newFragmentCache(defaultFragmentCacheBytes)
	js := webJSONCodec{name: "json", cache: cache}
	b, err := js.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	got := new(roomcastv1.WatchResponse)
	if err := protojson.Unmarshal(b, got); err != nil {
		t.Fatalf("%v in %.300s", err, b)
	}
	if !proto.Equal(got, want) {
		t.Errorf("JSON decodes to\n%v\nwant\n%v", got, want)
	}
	rendered := cache.Encodes()
	if entries := len(want.GetBatch().GetMessages()) + len(want.GetBatch().GetPresence()); rendered != uint64(entries) {
		t.Errorf("%d entries rendered, want %d", rendered, entries)
	}
	prefix := []byte("kept")
	again, err := js.MarshalAppend(prefix, f)
	if err != nil || string(again[:4]) != "kept" || cache.Encodes() != rendered {
		t.Errorf("rendering again: %v, %d renderings in all (want %d)", err, cache.Encodes(), rendered)
	}

	bin, err := webProtoCodec{}.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	got.Reset()
	if err := proto.Unmarshal(bin, got); err != nil || !proto.Equal(got, want) {
		t.Errorf("binary decodes to %v, %v", got, err)
	}
	if string(bin) != string(f.bufs.Materialize()) {
		t.Error("binary is not the frame's bytes")
	}
}

// A batch of only presence events, or only messages, is valid JSON too.
func TestWebJSONBatchOfOneKind(t *testing.T) {
	cache := newFragmentCache(defaultFragmentCacheBytes)
	ev, err := wire.PresenceEntry(&roomcastv1.PresenceEvent{Room: "r", Kind: roomcastv1.PresenceEventKind(2)})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := wire.MessageEntry(&roomcastv1.Message{Room: "r", Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, entries := range [][]byte{ev, msg} {
		b, err := cache.appendBatch(nil, &frame{bufs: mem.BufferSlice{wire.BatchHeader(len(entries)), mem.SliceBuffer(entries)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(b, new(roomcastv1.WatchResponse)); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}

// The cache keeps within its bytes: an entry evicted is rendered again
// when asked for, and fragments in use survive a generation's turn.
func TestFragmentCacheIsBounded(t *testing.T) {
	cache := newFragmentCache(fragmentShards * 2 * 4 << 10) // 4 KiB per generation per shard
	entries := make([][]byte, 5000)
	for i := range entries {
		b, err := wire.MessageEntry(&roomcastv1.Message{Room: "r", Offset: uint64(i + 1), Payload: &roomcastv1.Message_Text{Text: "0123456789"}})
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = b
		if _, err := cache.fragment(b, nil, len(b)); err != nil {
			t.Fatal(err)
		}
	}
	held := 0
	for i := range cache.shards {
		sh := &cache.shards[i]
		held += len(sh.cur) + len(sh.old)
	}
	if held >= len(entries) {
		t.Errorf("the cache holds all %d entries", held)
	}
	before := cache.Encodes()
	if _, err := cache.fragment(entries[0], nil, len(entries[0])); err != nil || cache.Encodes() != before+1 {
		t.Errorf("an evicted entry was not rendered again: %v", err)
	}
	last := entries[len(entries)-1]
	before = cache.Encodes()
	if _, err := cache.fragment(last, nil, len(last)); err != nil || cache.Encodes() != before {
		t.Errorf("the newest entry was rendered again: %v", err)
	}
}
