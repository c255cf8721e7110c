package broker

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The wire layout this file depends on: a SubscribeResponse whose batch field
// holds a MessageBatch is
//
//	tag(SubscribeResponse.batch) len(batch) entry entry ...
//
// where each entry is tag(MessageBatch.messages) len(msg) msg, or the same
// for MessageBatch.presence. Protobuf encodes a repeated field as its
// elements laid end to end, and decoders accept the fields in any order, so
// entries encoded once, at publish, can be shared by every subscriber's frame;
// only the few header bytes are written per frame. HistoryResponse.messages
// has MessageBatch.messages's number and type, so history reuses the entries.
var (
	batchField    = (&roomcastv1.SubscribeResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()
	messageField  = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("messages").Number()
	presenceField = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("presence").Number()
	historyFields = (&roomcastv1.HistoryResponse{}).ProtoReflect().Descriptor().Fields()
	historyOffset = historyFields.ByName("offset").Number()
	historyEpoch  = historyFields.ByName("epoch").Number()
)

// encodeEntry encodes m once, as an element of the repeated field.
func encodeEntry(field protowire.Number, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	b := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeVarint(uint64(size))+size)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
}

// frameHeader is the start of a SubscribeResponse carrying a batch of n bytes
// of entries.
func frameHeader(n int) mem.Buffer {
	h := make([]byte, 0, protowire.SizeTag(batchField)+protowire.SizeVarint(uint64(n)))
	h = protowire.AppendTag(h, batchField, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(n))
	return mem.SliceBuffer(h)
}

// historyFrame is a HistoryResponse: the shared message entries, then the
// room's offset and epoch.
func historyFrame(entries []mem.Buffer, offset uint64, epoch string) mem.BufferSlice {
	var t []byte
	if offset != 0 {
		t = protowire.AppendTag(t, historyOffset, protowire.VarintType)
		t = protowire.AppendVarint(t, offset)
	}
	if epoch != "" {
		t = protowire.AppendTag(t, historyEpoch, protowire.BytesType)
		t = protowire.AppendString(t, epoch)
	}
	frame := make(mem.BufferSlice, 0, len(entries)+1)
	frame = append(frame, entries...)
	if len(t) > 0 {
		frame = append(frame, mem.SliceBuffer(t))
	}
	return frame
}
