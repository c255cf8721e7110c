package vtcodec_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// decoded are the message types FuzzUnmarshal decodes into, by its kind
// argument: the requests the server decodes and the responses the client
// does.
var decoded = []func() vtcodec.Message{
	func() vtcodec.Message { return new(roomcastv1.PublishRequest) },
	func() vtcodec.Message { return new(roomcastv1.PublishStreamRequest) },
	func() vtcodec.Message { return new(roomcastv1.SubscribeRequest) },
	func() vtcodec.Message { return new(roomcastv1.WatchRequest) },
	func() vtcodec.Message { return new(roomcastv1.PublishResponse) },
	func() vtcodec.Message { return new(roomcastv1.PublishStreamResponse) },
	func() vtcodec.Message { return new(roomcastv1.CommandReply) },
}

// FuzzUnmarshal checks that vtcodec.Unmarshal and proto.Unmarshal agree on
// the same bytes: both refuse them, or both make the same message; that
// the message does not share the bytes, which grpc-go reuses; and that it
// encodes again to what proto decodes to the same message.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range hot() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for kind := range decoded {
			f.Add(b, uint8(kind))
		}
	}
	f.Add([]byte{0x0a, 0x02, 'r', 0xff}, uint8(0))
	f.Add([]byte{0x08, 0x01, 0x0a, 0x01, 'r'}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, kind uint8) {
		newMsg := decoded[int(kind)%len(decoded)]
		want, got := newMsg(), newMsg()
		errP := proto.Unmarshal(b, want)
		in := append([]byte(nil), b...)
		errV := vtcodec.Unmarshal(in, got)
		if (errP == nil) != (errV == nil) {
			t.Fatalf("%T: proto.Unmarshal: %v; vtcodec.Unmarshal: %v", want, errP, errV)
		}
		if errP != nil {
			return
		}
		for i := range in {
			in[i] = 0xa5 // what a reused receive buffer would hold next
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%T: vtcodec made %v, proto %v", want, got, want)
		}
		again, err := vtcodec.MarshalAppend(nil, got)
		if err != nil {
			t.Fatalf("%T: encoding what was decoded: %v", got, err)
		}
		back := newMsg()
		dropWellKnownUnknowns(want.ProtoReflect()) // MarshalAppend drops them (see Unmarshal)
		if err := proto.Unmarshal(again, back); err != nil || !proto.Equal(back, want) {
			t.Fatalf("%T: encoded again, proto decodes %v (%v), want %v", got, back, err, want)
		}
	})
}

// dropWellKnownUnknowns clears the unknown fields of the well-known types'
// messages (google.protobuf.*) held in m, at any depth: the generated code
// of those types does not encode them again.
func dropWellKnownUnknowns(m protoreflect.Message) {
	if m.Descriptor().FullName().Parent() == "google.protobuf" {
		m.SetUnknown(nil)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, e protoreflect.Value) bool {
					dropWellKnownUnknowns(e.Message())
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := range v.List().Len() {
					dropWellKnownUnknowns(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			dropWellKnownUnknowns(v.Message())
		}
		return true
	})
}
