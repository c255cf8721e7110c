package client

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protoapi "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// A Subscribe stream's responses are mostly batches of messages, each of
// which the subscription hands to the application as a *Message of its own.
// proto.Unmarshal would build a SubscribeResponse around every batch, a
// MessageBatch and its slice, and for each message the message, its
// payload's oneof wrapper, its timestamp and a copy of every string. The
// stream's codec (streamCodec) decodes a batch instead straight into
// messages, each allocated with its event, wrapper, timestamp and (up to
// 256 bytes) payload in one piece, with the strings that repeat from
// message to message (room, content type, publisher session) shared, and
// skips the presence events the subscription does not deliver. Session events and replies, a few per
// stream, go through proto.Unmarshal.
//
// The messages equal what proto.Unmarshal would make of them, but for
// fields this version does not know, which are dropped rather than kept as
// unknown fields (TestDecodeBatchMatchesProto, FuzzDecodeResponse).

// Field numbers of the messages decoded here, from broker.proto.
const (
	respSession = 1 // SubscribeResponse.session
	respReply   = 2 // SubscribeResponse.reply
	respBatch   = 3 // SubscribeResponse.batch

	batchMessages = 1 // MessageBatch.messages

	msgRoom             = 1
	msgOffset           = 2
	msgData             = 3
	msgText             = 4
	msgContentType      = 5
	msgHeaders          = 6
	msgPublishTime      = 7
	msgPublisherSession = 8

	tsSeconds = 1 // google.protobuf.Timestamp
	tsNanos   = 2

	entryKey   = 1 // a map entry
	entryValue = 2
)

var errInvalidUTF8 = errors.New("a string field is not valid UTF-8")

// response is one SubscribeResponse, as the receiver reads it: its event,
// and for a batch the messages, in a slice reused from one response to the
// next. It is reused by one receiver; the messages, never.
type response struct {
	session *roomcastv1.SessionEvent
	reply   *roomcastv1.CommandReply
	batch   bool
	msgs    []*Event // each of a message
	strs    shared   // strings shared between messages, kept from batch to batch
}

// reset empties r for the next response, keeping its buffers.
func (r *response) reset() {
	clear(r.msgs) // the messages are the application's: do not keep them alive
	r.session, r.reply, r.batch, r.msgs = nil, nil, false, r.msgs[:0]
}

// decode decodes SubscribeResponse b into r, which reset emptied. A repeated
// event field is merged into the last, and an event replaces a different
// earlier one, as proto.Unmarshal does with a oneof.
func (r *response) decode(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType || num < respSession || num > respBatch {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var err error
		switch num {
		case respSession:
			if r.session == nil {
				r.reset()
				r.session = new(roomcastv1.SessionEvent)
			}
			err = merge.Unmarshal(v, r.session)
		case respReply:
			if r.reply == nil {
				r.reset()
				r.reply = new(roomcastv1.CommandReply)
			}
			err = merge.Unmarshal(v, r.reply)
		case respBatch:
			if !r.batch {
				r.reset()
				r.batch = true
			}
			err = r.decodeBatch(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var merge = protoapi.UnmarshalOptions{Merge: true}

// decodeBatch appends the messages of MessageBatch b to r.msgs.
func (r *response) decodeBatch(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num != batchMessages || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m, err := r.decodeMessage(v)
		if err != nil {
			return err
		}
		r.msgs = append(r.msgs, m)
	}
	return nil
}

// messageBox is a message's event and the message with what it points to,
// allocated in one piece: its payload's oneof wrapper and its timestamp.
type messageBox struct {
	ev   Event
	m    Message
	data roomcastv1.Message_Data
	text roomcastv1.Message_Text
	ts   timestamppb.Timestamp
}

// newBox returns a new box, and n bytes for its payload: in the same
// allocation when n is small, as most payloads are, so that a message
// costs one allocation. The bytes are the message's, capped to n. Past 256
// bytes the payload is allocated apart: in one piece, box and payload
// would take a larger size class than the two do (a box is 264 bytes; with
// a 1 KiB payload, 1,408 rather than 288 + 1,024), and the collector runs
// as often as bytes are allocated.
func newBox(n int) (*messageBox, []byte) {
	switch {
	case n <= 64:
		b := new(struct {
			messageBox
			buf [64]byte
		})
		return &b.messageBox, b.buf[:n:n]
	case n <= 256:
		b := new(struct {
			messageBox
			buf [256]byte
		})
		return &b.messageBox, b.buf[:n:n]
	}
	return new(messageBox), make([]byte, n)
}

// payload kinds of a message being decoded.
const (
	noPayload = iota
	dataPayload
	textPayload
)

// decodeMessage decodes Message b into a new message, in its event. The
// message owns its payload: nothing else refers to it. The fields are read
// first and the message allocated last, when its payload's size is known.
func (r *response) decodeMessage(b []byte) (*Event, error) {
	var (
		room, contentType, publisher, text string
		offset                             uint64
		payload                            = noPayload
		data                               []byte // b's: copied into the message
		headers                            map[string]string
		ts                                 timestamppb.Timestamp // merged: copied field by field
		hasTS                              bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		// A known field of another wire type than its own is an unknown
		// field to proto.Unmarshal, and skipped here.
		var err error
		switch {
		case typ == protowire.VarintType && num == msgOffset:
			offset = x
		case typ != protowire.BytesType:
		case num == msgRoom:
			room, err = r.strs.get(sharedRoom, v)
		case num == msgData:
			payload, data = dataPayload, v
		case num == msgText:
			if !utf8.Valid(v) {
				return nil, errInvalidUTF8
			}
			payload, text = textPayload, string(v)
		case num == msgContentType:
			contentType, err = r.strs.get(sharedContentType, v)
		case num == msgHeaders:
			if headers == nil {
				headers = make(map[string]string, 1)
			}
			err = decodeEntry(v, headers)
		case num == msgPublishTime:
			hasTS = true
			err = decodeTimestamp(v, &ts)
		case num == msgPublisherSession:
			publisher, err = r.strs.get(sharedPublisher, v)
		}
		if err != nil {
			return nil, err
		}
	}
	box, buf := newBox(len(data))
	m := &box.m
	box.ev.Message = m
	m.Room, m.Offset, m.ContentType, m.Headers, m.PublisherSession = room, offset, contentType, headers, publisher
	switch payload {
	case dataPayload:
		copy(buf, data)
		box.data.Data = buf
		m.Payload = &box.data
	case textPayload:
		box.text.Text = text
		m.Payload = &box.text
	}
	if hasTS {
		box.ts.Seconds, box.ts.Nanos = ts.Seconds, ts.Nanos
		m.PublishTime = &box.ts
	}
	return &box.ev, nil
}

// decodeEntry adds map entry b to h.
func decodeEntry(b []byte, h map[string]string) error {
	var key, value []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != entryKey && num != entryValue) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num == entryKey {
			key = v
		} else {
			value = v
		}
	}
	if !utf8.Valid(key) || !utf8.Valid(value) {
		return errInvalidUTF8
	}
	h[string(key)] = string(value)
	return nil
}

// decodeTimestamp merges Timestamp b into ts.
func decodeTimestamp(b []byte, ts *timestamppb.Timestamp) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.VarintType || (num != tsSeconds && num != tsNanos) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num == tsSeconds {
			ts.Seconds = int64(x)
		} else {
			ts.Nanos = int32(x)
		}
	}
	return nil
}

// maxShared bounds the strings a receiver shares between messages; past
// it, it forgets them all and starts again.
const maxShared = 256

// The fields whose values are shared, each with the last value seen.
const (
	sharedRoom = iota
	sharedContentType
	sharedPublisher
	sharedFields
)

// shared are the strings shared between the messages of one stream: the
// values of fields that repeat from message to message. Strings cannot
// change, so messages may share them. Each field's last value is checked
// before the map, since a stream's messages are mostly of one room, one
// content type and one publisher at a time.
type shared struct {
	m    map[string]string
	last [sharedFields]string
}

// get returns b, a value of field, as a string: a shared one if it was
// seen before. It checks that b is valid UTF-8, as proto3 requires.
func (s *shared) get(field int, b []byte) (string, error) {
	if last := s.last[field]; last == string(b) { // no allocation for either lookup
		return last, nil
	}
	str, ok := s.m[string(b)]
	if !ok {
		if !utf8.Valid(b) {
			return "", errInvalidUTF8
		}
		if len(s.m) >= maxShared || s.m == nil {
			s.m = make(map[string]string)
		}
		str = string(b)
		s.m[str] = str
	}
	s.last[field] = str
	return str, nil
}

// streamCodec is the codec of a Subscribe stream: it decodes responses
// received into a *response with response.decode, and everything else as
// the proto codec does.
type streamCodec struct{ proto vtcodec.Codec }

// subscribeCodec is the codec of every Subscribe stream.
var subscribeCodec = streamCodec{}

func (c streamCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c streamCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*response)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(receivePool) // copied only if the response spans frames
	defer buf.Free()
	if err := r.decode(buf.ReadOnlyData()); err != nil {
		return fmt.Errorf("decoding a Subscribe response: %w", err)
	}
	return nil
}

// Name is "proto": on the wire these are ordinary protobuf messages.
func (streamCodec) Name() string { return proto.Name }
