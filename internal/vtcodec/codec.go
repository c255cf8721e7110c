// Package vtcodec is the gRPC codec of roomcast's server and Go client: it
// encodes and decodes the messages that have vtprotobuf's generated
// MarshalVT, SizeVT and UnmarshalVT (gen/roomcast/v1's) with those, which
// need no reflection, and everything else with grpc-go's proto codec.
//
// What it accepts and what it makes is what the proto codec would: a string
// field that is not valid UTF-8, which proto refuses and vtprotobuf does
// not check, is caught by a walk over the bytes (utf8.go), and whatever
// vtprotobuf's code refuses or the walk finds wrong is handed to proto
// again, so that a bad message fails with proto's error and a message that
// proto takes (a known field with an unexpected wire type, kept as an
// unknown field) is still taken. Those are rare: the fast path is one pass
// of the generated code and one of the walk.
package vtcodec

import (
	"fmt"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/roomcast/roomcast/internal/bufpool"
)

// Message is a protobuf message with vtprotobuf's generated methods, as
// gen/roomcast/v1's messages have them.
type Message interface {
	protoreflect.ProtoMessage
	SizeVT() int
	MarshalToSizedBufferVT(b []byte) (int, error)
	UnmarshalVT(b []byte) error
	Reset()
}

// Codec is the codec; its zero value is ready to use. It is safe for
// concurrent use. Its Name is "proto": on the wire these are ordinary
// protobuf messages.
type Codec struct{}

// fallback is grpc-go's proto codec, for the messages without vtprotobuf's
// methods.
var fallback = encoding.GetCodecV2(grpcproto.Name)

// pool holds the buffers of encodings and of messages copied together from
// several frames. Unlike mem.DefaultBufferPool, which the proto codec uses,
// it does not zero them: the generated code writes every byte of an
// encoding's buffer, and a copy every byte of its own, before anything
// reads them. (The default pool cleared a whole tier per message: 1 MiB for
// a Publisher's batch of 256 KiB.)
var pool = new(bufpool.Pool)

// Marshal encodes v into pooled buffers, as the proto codec does, unless it
// is small.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(Message)
	if !ok {
		return fallback.Marshal(v)
	}
	return marshal(m, marshalSized)
}

// MarshalChecked is Codec.Marshal for a message whose caller has checked
// that every string field is valid UTF-8: it leaves out the walk that
// checks them, and encodes such a message as Marshal does. Given an invalid
// string, it encodes it, where Marshal fails. Calls may run at once.
func MarshalChecked(m Message) (mem.BufferSlice, error) {
	return marshal(m, marshalFilling)
}

// marshalFilling encodes m into b, which is m.SizeVT() bytes long, and
// fails unless the encoding fills it: b may be a used buffer of the
// unzeroed pool, whose unwritten start would carry an earlier message's
// bytes (the encoding is written from b's end; a message changed while it
// is encoded could come out shorter than its size).
func marshalFilling(b []byte, m Message) error {
	n, err := m.MarshalToSizedBufferVT(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("vtcodec: a %T encoded in %d bytes, not its size of %d: was it changed while it was sent?", m, n, len(b))
	}
	return err
}

// marshal encodes m with enc, which writes m into a slice of m.SizeVT()
// bytes.
func marshal(m Message, enc func([]byte, Message) error) (mem.BufferSlice, error) {
	size := m.SizeVT()
	if size <= tinySize {
		t := new(tiny)
		t.buf = t.bytes[:size]
		if err := enc(t.buf, m); err != nil {
			return nil, err
		}
		t.slice[0] = &t.buf
		return t.slice[:], nil
	}
	if mem.IsBelowBufferPoolingThreshold(size) {
		sm := &small{buf: make([]byte, size)}
		if err := enc(sm.buf, m); err != nil {
			return nil, err
		}
		sm.slice[0] = &sm.buf
		return sm.slice[:], nil
	}
	buf := pool.Get(size)
	if err := enc(*buf, m); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// small holds a small message's encoding as grpc-go takes it: a
// BufferSlice of one SliceBuffer. The slice's array and the buffer the
// interface points at share one allocation, where the proto codec makes
// two (the buffer, boxed, and the slice).
type small struct {
	slice [1]mem.Buffer
	buf   mem.SliceBuffer
}

// tinySize bounds the messages that tiny holds: a Subscribe command's
// reply, a Publish's answer. A flood of commands makes hundreds of
// thousands of replies a second (issue #13, attack (e)).
const tinySize = 64

// tiny is small with the bytes in it too: a tiny message's encoding is one
// allocation.
type tiny struct {
	slice [1]mem.Buffer
	buf   mem.SliceBuffer
	bytes [tinySize]byte
}

// Unmarshal decodes data into v, which must be a pointer to a message. It
// does not keep data, which grpc-go reuses.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(Message)
	if !ok {
		return fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(pool)
	defer buf.Free()
	return Unmarshal(buf.ReadOnlyData(), m)
}

// Name is "proto".
func (Codec) Name() string { return grpcproto.Name }

// Unmarshal decodes b into m, replacing what m held, as proto.Unmarshal
// does and with its result: the same message, or an error where proto
// gives one. m holds no reference to b afterwards. Calls on different
// messages may run at once.
func Unmarshal(b []byte, m Message) error {
	m.Reset()
	if err := m.UnmarshalVT(b); err == nil && validUTF8(b, m.ProtoReflect().Descriptor()) {
		return nil
	}
	// Refused by the generated code or by the UTF-8 walk: proto says
	// whether it is refused, and why.
	return proto.Unmarshal(b, m)
}

// MarshalAppend appends m's encoding to b, failing where proto.Marshal
// would: on a string field that is not valid UTF-8. Unknown fields of the
// well-known types' messages in m (a google.protobuf.Duration's, say) are
// not encoded, as the generated code of those types drops them; proto
// would keep them. Unmarshal keeps them, as proto does. m must not change
// meanwhile; calls may run at once.
func MarshalAppend(b []byte, m Message) ([]byte, error) {
	return AppendSized(b, m, m.SizeVT())
}

// AppendSized is MarshalAppend for a caller that has m's size already:
// size must be m.SizeVT().
func AppendSized(b []byte, m Message, size int) ([]byte, error) {
	n := len(b)
	b = append(b, make([]byte, size)...)
	if err := marshalSized(b[n:], m); err != nil {
		return b[:n], err
	}
	return b, nil
}

// marshalSized encodes m into b, which is m.SizeVT() bytes long.
func marshalSized(b []byte, m Message) error {
	if err := marshalFilling(b, m); err != nil {
		return err
	}
	if !validUTF8(b, m.ProtoReflect().Descriptor()) {
		// The walk refuses what it cannot check too (see validUTF8):
		// proto decides, and its error says which field.
		_, err := proto.Marshal(m)
		return err
	}
	return nil
}
