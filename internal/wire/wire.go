// Package wire is the one place that knows how roomcast's responses are laid
// out on the wire, so that a message encoded once, at publish, can be shared
// by every frame that carries it.
//
// A SubscribeResponse whose batch field holds a MessageBatch is
//
//	tag(SubscribeResponse.batch) len(batch) entry entry ...
//
// where each entry is tag(MessageBatch.messages) len(msg) msg, or the same
// for MessageBatch.presence. Protobuf encodes a repeated field as its
// elements laid end to end, and decoders accept the fields in any order, so
// an entry encoded once can be placed in every subscriber's frame; only the
// few header bytes are written per frame. HistoryResponse.messages has
// MessageBatch.messages's number and type, so a HistoryResponse is the same
// entries followed by the room's offset and epoch.
//
// An entry's bytes are immutable once made: the hub, the server's codec and
// gRPC's transport read them from many goroutines at once.
package wire

import (
	"sync/atomic"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// Field numbers of the layout, read from the generated descriptors so that
// they cannot drift from the proto.
var (
	batchField    = (&roomcastv1.SubscribeResponse{}).ProtoReflect().Descriptor().Fields().ByName("batch").Number()
	messageField  = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("messages").Number()
	presenceField = (&roomcastv1.MessageBatch{}).ProtoReflect().Descriptor().Fields().ByName("presence").Number()
	historyFields = (&roomcastv1.HistoryResponse{}).ProtoReflect().Descriptor().Fields()
	historyOffset = historyFields.ByName("offset").Number()
	historyEpoch  = historyFields.ByName("epoch").Number()
	offsetField   = (&roomcastv1.Message{}).ProtoReflect().Descriptor().Fields().ByName("offset").Number()
	dataField     = (&roomcastv1.Message{}).ProtoReflect().Descriptor().Fields().ByName("data").Number()
	eventFields   = (&roomcastv1.PresenceEvent{}).ProtoReflect().Descriptor().Fields()
	eventRoom     = eventFields.ByName("room").Number()
	eventKind     = eventFields.ByName("kind").Number()
	eventMember   = eventFields.ByName("member").Number()
	eventOffset   = eventFields.ByName("offset").Number()
	presenceResp  = (&roomcastv1.PresenceResponse{}).ProtoReflect().Descriptor().Fields()
	presenceMemb  = presenceResp.ByName("members").Number()
	presenceTotal = presenceResp.ByName("total").Number()
)

// MessageEntry encodes m once as an element of MessageBatch.messages (and so
// of HistoryResponse.messages).
func MessageEntry(m *roomcastv1.Message) ([]byte, error) { return entry(messageField, m) }

// MinSharedPayload is the smallest bytes payload that MessageEntryParts
// leaves where it is rather than copying into the entry: below it, one
// buffer an entry is worth a copy.
const MinSharedPayload = 32 << 10

// MessageEntryParts is MessageEntry for a message that may be large: when
// m's payload is bytes of at least MinSharedPayload, it returns the entry
// in two parts, head and then data, m's payload itself, not copied, so a
// 1 MiB publish allocates and copies its payload once (when its request is
// decoded) rather than twice. Decoders accept fields in any order, so head
// is the rest of the message with the payload's tag and length last. Below
// MinSharedPayload, or for a text payload, data is nil and head is
// MessageEntry's. The payload's bytes must not change afterwards, as an
// entry's may not; m is as it was on return.
func MessageEntryParts(m *roomcastv1.Message) (head, data []byte, err error) {
	p, ok := m.GetPayload().(*roomcastv1.Message_Data)
	if !ok || len(p.Data) < MinSharedPayload {
		head, err = MessageEntry(m)
		return head, nil, err
	}
	m.Payload = nil
	defer func() { m.Payload = p }()
	rest := m.SizeVT()
	size := rest + protowire.SizeTag(dataField) + protowire.SizeBytes(len(p.Data))
	head = make([]byte, 0, protowire.SizeTag(messageField)+protowire.SizeVarint(uint64(size))+size-len(p.Data))
	head = protowire.AppendTag(head, messageField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(size))
	if head, err = vtcodec.AppendSized(head, m, rest); err != nil {
		return nil, nil, err
	}
	head = protowire.AppendTag(head, dataField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(p.Data)))
	return head, p.Data, nil
}

// PresenceEntry encodes ev once as an element of MessageBatch.presence.
func PresenceEntry(ev *roomcastv1.PresenceEvent) ([]byte, error) { return entry(presenceField, ev) }

// MemberEntry encodes m once as an element of PresenceResponse.members,
// so that a PresenceResponse is made of a room's members' entries, shared,
// and its total (see Presence).
func MemberEntry(m *roomcastv1.Member) ([]byte, error) { return entry(presenceMemb, m) }

// Member is the Member encoded in e, an entry MemberEntry made: what a
// PresenceEvent carries (see PresenceEntryFrom).
func Member(e []byte) []byte {
	_, _, n := protowire.ConsumeTag(e)
	m, _ := protowire.ConsumeBytes(e[n:])
	return m
}

// PresenceTrailerBytes bounds what a PresenceResponse holds besides its
// members' entries: its total.
const PresenceTrailerBytes = 1 + 5 // a tag of field 2, a uint32

// Presence is a PresenceResponse: the shared member entries, then the
// room's total of members. It appends to members, which the caller gives
// up: with room for one more buffer, it makes no slice of its own.
func Presence(members []mem.Buffer, total uint32) mem.BufferSlice {
	frame := mem.BufferSlice(members)
	if total != 0 {
		t := protowire.AppendTag(make([]byte, 0, PresenceTrailerBytes), presenceTotal, protowire.VarintType)
		frame = append(frame, mem.SliceBuffer(protowire.AppendVarint(t, uint64(total))))
	}
	return frame
}

// entry encodes m with vtprotobuf's generated code (vtcodec), which
// encodes as proto does without its reflection.
func entry(field protowire.Number, m vtcodec.Message) ([]byte, error) {
	size := m.SizeVT()
	b := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeVarint(uint64(size))+size)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	return vtcodec.AppendSized(b, m, size)
}

// MessageEntryAt makes a MessageBatch.messages element from body, a Message
// encoded without its offset (by a node that did not know it yet), and the
// offset the room's sequencer gave it. It appends a field rather than
// encoding the message again: decoders accept fields in any order.
func MessageEntryAt(body []byte, offset uint64) []byte {
	var off []byte
	if offset != 0 {
		off = protowire.AppendTag(off, offsetField, protowire.VarintType)
		off = protowire.AppendVarint(off, offset)
	}
	size := len(body) + len(off)
	b := make([]byte, 0, protowire.SizeTag(messageField)+protowire.SizeVarint(uint64(size))+size)
	b = protowire.AppendTag(b, messageField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = append(b, body...)
	return append(b, off...)
}

// PresenceEntryFrom makes a MessageBatch.presence element from the parts of a
// PresenceEvent, member being an encoded Member, by appending fields rather
// than encoding a message.
func PresenceEntryFrom(room string, kind roomcastv1.PresenceEventKind, member []byte, offset uint64) []byte {
	var ev []byte
	ev = protowire.AppendTag(ev, eventRoom, protowire.BytesType)
	ev = protowire.AppendString(ev, room)
	ev = protowire.AppendTag(ev, eventKind, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(kind))
	ev = protowire.AppendTag(ev, eventMember, protowire.BytesType)
	ev = protowire.AppendBytes(ev, member)
	if offset != 0 {
		ev = protowire.AppendTag(ev, eventOffset, protowire.VarintType)
		ev = protowire.AppendVarint(ev, offset)
	}
	b := make([]byte, 0, protowire.SizeTag(presenceField)+protowire.SizeBytes(len(ev)))
	b = protowire.AppendTag(b, presenceField, protowire.BytesType)
	return protowire.AppendBytes(b, ev)
}

// BatchHeader is the start of a SubscribeResponse carrying a batch of n bytes
// of entries: the one part of a frame written per subscriber. Headers of
// batches under cachedHeaders bytes are made once and shared, like the
// entries: in small rooms most batches hold one message, and a new header
// costs two allocations a frame. Safe for concurrent use.
func BatchHeader(n int) mem.Buffer {
	if n < 0 || n >= cachedHeaders {
		return batchHeader(n)
	}
	if h := headers[n].Load(); h != nil {
		return *h
	}
	h := batchHeader(n) // racing callers make equal ones; either is kept
	headers[n].Store(&h)
	return h
}

// cachedHeaders bounds the batch sizes whose headers are kept: a few
// messages of a KiB. The table costs 8 bytes of address space per size,
// and memory only where it is used.
const cachedHeaders = 8 << 10

var headers [cachedHeaders]atomic.Pointer[mem.Buffer]

func batchHeader(n int) mem.Buffer {
	h := make([]byte, 0, protowire.SizeTag(batchField)+protowire.SizeVarint(uint64(n)))
	h = protowire.AppendTag(h, batchField, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(n))
	return mem.SliceBuffer(h)
}

// History is a HistoryResponse: the shared message entries, then the room's
// newest offset and its epoch. It appends to entries, which the caller
// gives up: with room for one more buffer, it makes no slice of its own.
func History(entries []mem.Buffer, offset uint64, epoch string) mem.BufferSlice {
	var t []byte
	if offset != 0 {
		t = protowire.AppendTag(t, historyOffset, protowire.VarintType)
		t = protowire.AppendVarint(t, offset)
	}
	if epoch != "" {
		t = protowire.AppendTag(t, historyEpoch, protowire.BytesType)
		t = protowire.AppendString(t, epoch)
	}
	frame := mem.BufferSlice(entries)
	if len(t) > 0 {
		frame = append(frame, mem.SliceBuffer(t))
	}
	return frame
}

// The response headers of a PublishStream that tell a publisher the server
// takes batches, and their limits: the most publishes one request may
// carry, and the most bytes (see the proto's PublishStreamRequest.batch).
const (
	PublishBatchItemsHeader = "roomcast-publish-batch-items"
	PublishBatchBytesHeader = "roomcast-publish-batch-bytes"
)
