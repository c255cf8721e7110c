package vtcodec_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// hot are the messages of the hot RPCs, as clients and the server send
// them: at most one map entry each, so that proto's deterministic encoding
// is the only one.
func hot() []vtcodec.Message {
	return []vtcodec.Message{
		&roomcastv1.PublishRequest{Room: "chat.lobby", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}},
		&roomcastv1.PublishRequest{Room: "chat.lobby", Payload: &roomcastv1.PublishRequest_Text{Text: "héllo"}, ContentType: "text/plain",
			Headers: map[string]string{"trace": "abc"}, SessionId: "s1", ExcludeSession: "s2", IdempotencyKey: "k"},
		&roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: []byte{}}},
		&roomcastv1.PublishResponse{Offset: 1 << 40, Epoch: "e1"},
		&roomcastv1.PublishStreamRequest{Id: "7", Publish: &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}}},
		&roomcastv1.PublishStreamResponse{Id: "7"},
		&roomcastv1.PublishStreamRequest{Id: "8", Publish: &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Text{Text: "x"}},
			Batch: []*roomcastv1.PublishStreamItem{{Id: "9", Publish: &roomcastv1.PublishRequest{Room: "s", Payload: &roomcastv1.PublishRequest_Data{Data: []byte{1}}}}}},
		&roomcastv1.PublishStreamResponse{Id: "8", Result: &roomcastv1.PublishStreamResponse_Ok{Ok: &roomcastv1.PublishResponse{Offset: 4, Epoch: "e"}},
			Batch: []*roomcastv1.PublishStreamResult{
				{Id: "9", Result: &roomcastv1.PublishStreamResult_Ok{Ok: &roomcastv1.PublishResponse{Offset: 5, Epoch: "e"}}},
				{Id: "10", Result: &roomcastv1.PublishStreamResult_Error{Error: &roomcastv1.Error{Code: 3, Message: "bad room"}}},
			}},
		&roomcastv1.SubscribeRequest{Id: "1", Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{
			Room: "r", Presence: true, Info: map[string]string{"name": "ann"}, Position: &roomcastv1.Position{Offset: 3, Epoch: "e"}}}},
		&roomcastv1.SubscribeRequest{Id: "2", Command: &roomcastv1.SubscribeRequest_Leave{Leave: &roomcastv1.LeaveCommand{Room: "r"}}},
		&roomcastv1.SubscribeRequest{Id: "3", Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: "t"}}},
	}
}

// TestMarshalMatchesProto checks that the codec's encoding of the hot
// messages is byte for byte proto's deterministic one.
func TestMarshalMatchesProto(t *testing.T) {
	for _, m := range hot() {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := vtcodec.MarshalAppend([]byte("prefix"), m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix" {
			t.Errorf("%T: MarshalAppend = %x, proto.Marshal = %x", m, got, want)
		}
		bufs, err := vtcodec.Codec{}.Marshal(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if b := bufs.Materialize(); !bytes.Equal(b, want) {
			t.Errorf("%T: Codec.Marshal = %x, proto.Marshal = %x", m, b, want)
		}
		bufs.Free()
		if bufs, err = vtcodec.MarshalChecked(m); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if b := bufs.Materialize(); !bytes.Equal(b, want) {
			t.Errorf("%T: MarshalChecked = %x, proto.Marshal = %x", m, b, want)
		}
		bufs.Free()
	}
}

// TestMarshalLarge checks the path of messages big enough for pooled
// buffers.
func TestMarshalLarge(t *testing.T) {
	m := &roomcastv1.PublishRequest{Room: "r", Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{7}, 64<<10)}}
	bufs, err := vtcodec.Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	defer bufs.Free()
	var got roomcastv1.PublishRequest
	if err := (vtcodec.Codec{}).Unmarshal(bufs, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, m) {
		t.Fatal("a 64 KiB message did not come back as it was")
	}
}

// TestMarshalReusesBuffersWhole checks that encodings in pooled buffers,
// which are not cleared between uses, are each exactly the message's: a
// smaller message after larger ones of other bytes in the same size
// class, and one decoded from pieces copied into a used buffer.
func TestMarshalReusesBuffersWhole(t *testing.T) {
	for i := range 20 {
		size := 48<<10 - i*500 // the same 64 KiB class, each smaller
		m := &roomcastv1.PublishRequest{Room: strings.Repeat("r", i+1), Payload: &roomcastv1.PublishRequest_Data{Data: bytes.Repeat([]byte{byte(i)}, size)}}
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bufs, err := vtcodec.MarshalChecked(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := bufs.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes encoded, want %d of proto's", i, len(got), len(want))
		}
		// Split in two, so that decoding copies them into one buffer.
		b := bufs.Materialize()
		bufs.Free()
		split := mem.BufferSlice{mem.SliceBuffer(b[:len(b)/3]), mem.SliceBuffer(b[len(b)/3:])}
		var got roomcastv1.PublishRequest
		if err := (vtcodec.Codec{}).Unmarshal(split, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, m) {
			t.Fatalf("message %d did not come back as it was", i)
		}
	}
}

// TestInvalidUTF8 checks that a string that is not UTF-8 fails both ways,
// as it does with proto, which the generated code alone would not do.
func TestInvalidUTF8(t *testing.T) {
	bad := &roomcastv1.PublishRequest{Room: "r\xff", Payload: &roomcastv1.PublishRequest_Data{Data: []byte{0xff}}}
	if _, err := vtcodec.MarshalAppend(nil, bad); err == nil {
		t.Error("MarshalAppend took a room that is not UTF-8")
	}
	if _, err := (vtcodec.Codec{}).Marshal(bad); err == nil {
		t.Error("Codec.Marshal took a room that is not UTF-8")
	}
	nested := &roomcastv1.SubscribeRequest{Command: &roomcastv1.SubscribeRequest_Join{Join: &roomcastv1.JoinCommand{Room: "r", Info: map[string]string{"k": "\xc3"}}}}
	wire, err := nested.MarshalVT() // the generated code does not check
	if err != nil {
		t.Fatal(err)
	}
	var got roomcastv1.SubscribeRequest
	err = vtcodec.Unmarshal(wire, &got)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Unmarshal of a join whose info is not UTF-8: %v, want proto's UTF-8 error", err)
	}
}

// TestWrongWireTypeKept checks that a known field with another wire type,
// which the generated code refuses and proto keeps as an unknown field, is
// taken as proto takes it.
func TestWrongWireTypeKept(t *testing.T) {
	wire := []byte{0x08, 0x01, 0x0a, 0x01, 'r'} // room as a varint, then room "r"
	var got roomcastv1.PublishRequest
	if err := vtcodec.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetRoom() != "r" || len(got.ProtoReflect().GetUnknown()) != 2 {
		t.Errorf("got room %q and %d unknown bytes, want \"r\" and 2", got.GetRoom(), len(got.ProtoReflect().GetUnknown()))
	}
}

// TestUnmarshalResets checks that decoding into a message that held
// something replaces it, as proto.Unmarshal does.
func TestUnmarshalResets(t *testing.T) {
	m := &roomcastv1.PublishRequest{Room: "old", ContentType: "old/type", Headers: map[string]string{"a": "b"}}
	wire, _ := proto.Marshal(&roomcastv1.PublishRequest{Room: "new"})
	if err := vtcodec.Unmarshal(wire, m); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, &roomcastv1.PublishRequest{Room: "new"}) {
		t.Errorf("got %v, want only room new", m)
	}
}

// TestFallback checks that messages without the generated methods go
// through proto.
func TestFallback(t *testing.T) {
	d := durationpb.New(1500)
	bufs, err := vtcodec.Codec{}.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got durationpb.Duration
	if err := (vtcodec.Codec{}).Unmarshal(bufs, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, d) {
		t.Errorf("got %v, want %v", &got, d)
	}
	if (vtcodec.Codec{}).Name() != "proto" {
		t.Error("the codec's name is not proto")
	}
}

// BenchmarkUnmarshal compares decoding a 64-byte publish with the codec and
// with proto.Unmarshal.
//
//	go test -run '^$' -bench BenchmarkUnmarshal -benchmem ./internal/vtcodec/
func BenchmarkUnmarshal(b *testing.B) {
	wire, err := proto.Marshal(&roomcastv1.PublishRequest{Room: "chat.lobby", Payload: &roomcastv1.PublishRequest_Data{Data: make([]byte, 64)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("vtcodec", func(b *testing.B) {
		b.ReportAllocs()
		var m roomcastv1.PublishRequest
		for range b.N {
			if err := vtcodec.Unmarshal(wire, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		var m roomcastv1.PublishRequest
		for range b.N {
			if err := proto.Unmarshal(wire, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMarshal compares encoding a PublishResponse with the codec and
// with grpc-go's proto codec.
//
//	go test -run '^$' -bench BenchmarkMarshal -benchmem ./internal/vtcodec/
func BenchmarkMarshal(b *testing.B) {
	m := &roomcastv1.PublishResponse{Offset: 123456, Epoch: "8Zx3kq"}
	for name, c := range map[string]encoding.CodecV2{"vtcodec": vtcodec.Codec{}, "proto": encoding.GetCodecV2("proto")} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				bufs, err := c.Marshal(m)
				if err != nil {
					b.Fatal(err)
				}
				bufs.Free()
			}
		})
	}
}

// TestTinyMessages checks the messages of up to 64 bytes, which are encoded
// in one allocation, at the bound and past it.
func TestTinyMessages(t *testing.T) {
	for _, n := range []int{0, 63, 64, 65} {
		m := &roomcastv1.PublishResponse{Epoch: strings.Repeat("e", max(n-2, 0))} // tag and length: 2 bytes
		if n == 0 {
			m.Epoch = ""
		}
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		bufs, err := vtcodec.Codec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if b := bufs.Materialize(); !bytes.Equal(b, want) || len(b) != n {
			t.Errorf("%d bytes: Codec.Marshal = %x, proto.Marshal = %x", n, b, want)
		}
		bufs.Free()
	}
	m := &roomcastv1.PublishResponse{Offset: 1 << 40, Epoch: "0123456789abc"}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = vtcodec.Codec{}.Marshal(m) }); allocs != 1 {
		t.Errorf("a %d-byte message took %v allocations to encode, want 1", m.SizeVT(), allocs)
	}
}
