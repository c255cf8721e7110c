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
// where each entry is tag(MessageBatch.messages) len(msg) msg. Protobuf
// encodes a repeated field as its elements laid end to end, so entries that
// were encoded once, at publish, can be shared by every subscriber's frame;
// only the few header bytes are written per frame.
var (
	batchField   = (&roomcastv1.SubscribeResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()
	messageField = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("messages").Number()
)

// encodeEntry encodes msg once, as an element of MessageBatch.messages.
func encodeEntry(msg *roomcastv1.Message) ([]byte, error) {
	size := proto.Size(msg)
	b := make([]byte, 0, protowire.SizeTag(messageField)+protowire.SizeVarint(uint64(size))+size)
	b = protowire.AppendTag(b, messageField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, msg)
}

// frameHeader is the start of a SubscribeResponse carrying a batch of n bytes
// of entries.
func frameHeader(n int) mem.Buffer {
	h := make([]byte, 0, protowire.SizeTag(batchField)+protowire.SizeVarint(uint64(n)))
	h = protowire.AppendTag(h, batchField, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(n))
	return mem.SliceBuffer(h)
}
