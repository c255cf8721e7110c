package server

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/protostrings"
)

// TestPublishStreamResponseCodec checks which responses the codec encodes
// without its UTF-8 walk (offsetsOnly), and that it encodes every one as
// proto does, or, for a string that is not UTF-8, fails as proto does.
func TestPublishStreamResponseCodec(t *testing.T) {
	ok := func(id, epoch string) *roomcastv1.PublishStreamResult {
		return &roomcastv1.PublishStreamResult{Id: id, Result: &roomcastv1.PublishStreamResult_Ok{Ok: &roomcastv1.PublishResponse{Offset: 2, Epoch: epoch}}}
	}
	resp := func(epoch string, batch ...*roomcastv1.PublishStreamResult) *roomcastv1.PublishStreamResponse {
		return &roomcastv1.PublishStreamResponse{Id: "1", Result: &roomcastv1.PublishStreamResponse_Ok{Ok: &roomcastv1.PublishResponse{Offset: 1, Epoch: epoch}}, Batch: batch}
	}
	refused := &roomcastv1.PublishStreamResult{Id: "3", Result: &roomcastv1.PublishStreamResult_Error{Error: &roomcastv1.Error{Code: 3, Message: "bad \xff"}}}
	for _, c := range []struct {
		name    string
		resp    *roomcastv1.PublishStreamResponse
		skipped bool // the walk left out
	}{
		{"one offset", resp("E1"), true},
		{"a batch of offsets", resp("E1", ok("2", "E1"), ok("3", "E1")), true},
		{"a new epoch in the batch", resp("E1", ok("2", "E2"), ok("3", "E2")), true},
		{"a refusal", resp("E1", ok("2", "E1"), refused), false},
		{"the first refused", &roomcastv1.PublishStreamResponse{Id: "1", Result: &roomcastv1.PublishStreamResponse_Error{Error: &roomcastv1.Error{Code: 3}}}, false},
		{"an epoch not UTF-8", resp("E\xff"), false},
		{"a batch's epoch not UTF-8", resp("E1", ok("2", "E1"), ok("3", "E\xff")), false},
	} {
		if got := offsetsOnly(c.resp); got != c.skipped {
			t.Errorf("%s: offsetsOnly = %v, want %v", c.name, got, c.skipped)
		}
		encodesAsProto(t, c.name, c.resp)
	}
}

// encodesAsProto checks that the server's codec encodes m as proto does,
// refusing what proto refuses.
func encodesAsProto(t *testing.T, name string, m proto.Message) {
	t.Helper()
	want, werr := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	bufs, err := newCodec().Marshal(m)
	if (err != nil) != (werr != nil) {
		t.Errorf("%s: codec error %v, proto error %v", name, err, werr)
		return
	}
	if err == nil {
		if b := bufs.Materialize(); !bytes.Equal(b, want) {
			t.Errorf("%s: codec encodes %x, proto %x", name, b, want)
		}
		bufs.Free()
	}
}

// offsetsOnly vouches for a response's strings outside its errors: the ids
// and the epochs. A string field added to a response, or to what it holds,
// would go out unchecked: it must be added to offsetsOnly and here.
func TestOffsetsOnlyKnowsEveryString(t *testing.T) {
	got := protostrings.Fields((&roomcastv1.PublishStreamResponse{}).ProtoReflect().Descriptor(), func(md protoreflect.MessageDescriptor) bool {
		return md.FullName() == "roomcast.v1.Error" // a response with an error keeps the walk
	})
	want := []string{
		"roomcast.v1.PublishResponse.epoch",
		"roomcast.v1.PublishStreamResponse.id",
		"roomcast.v1.PublishStreamResult.id",
	}
	if !slices.Equal(got, want) {
		t.Errorf("a PublishStreamResponse's strings outside its errors are %q; offsetsOnly checks %q", got, want)
	}
}
