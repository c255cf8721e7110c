package client

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/testsupport/protostrings"
)

// TestInvalidUTF8CoversEveryString checks that invalidUTF8 refuses a
// request with any of PublishRequest's string fields (map keys and values
// included) not valid UTF-8: the stream's codec encodes requests without
// checking them again (pubCodec.Marshal), so a field it missed would go out
// as proto would never send it.
func TestInvalidUTF8CoversEveryString(t *testing.T) {
	fields := (&roomcastv1.PublishRequest{}).ProtoReflect().Descriptor().Fields()
	const bad = "ok\xff"
	checked := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		var variants []*roomcastv1.PublishRequest
		switch {
		case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind:
			for _, kv := range [][2]string{{bad, "v"}, {"k", bad}} {
				req := &roomcastv1.PublishRequest{Room: "r"}
				m := req.ProtoReflect().Mutable(fd).Map()
				if fd.MapValue().Kind() != protoreflect.StringKind {
					t.Fatalf("%s: a map of strings to %v, which the test does not know", fd.Name(), fd.MapValue().Kind())
				}
				m.Set(protoreflect.ValueOfString(kv[0]).MapKey(), protoreflect.ValueOfString(kv[1]))
				variants = append(variants, req)
			}
		case fd.IsList() || fd.Message() != nil:
			t.Fatalf("%s: a field the test does not know", fd.Name())
		case fd.Kind() == protoreflect.StringKind:
			req := &roomcastv1.PublishRequest{Room: "r"}
			req.ProtoReflect().Set(fd, protoreflect.ValueOfString(bad))
			variants = append(variants, req)
		}
		for _, req := range variants {
			checked++
			if invalidUTF8(req) == "" {
				t.Errorf("invalidUTF8 takes %s not valid UTF-8: %v", fd.Name(), req)
			}
		}
	}
	if checked < 7 {
		t.Errorf("checked %d string fields, want at least the 7 known ones", checked)
	}
}

// A PublishStreamRequest's strings are its ids, which the Publisher
// formats as decimals, and its publishes', which invalidUTF8 checks (above):
// a string field added to the request or its items would go out unchecked.
func TestStreamRequestStringsAreKnown(t *testing.T) {
	got := protostrings.Fields((&roomcastv1.PublishStreamRequest{}).ProtoReflect().Descriptor(), func(md protoreflect.MessageDescriptor) bool {
		return md.FullName() == "roomcast.v1.PublishRequest"
	})
	want := []string{"roomcast.v1.PublishStreamItem.id", "roomcast.v1.PublishStreamRequest.id"}
	if !slices.Equal(got, want) {
		t.Errorf("a PublishStreamRequest's strings outside its publishes are %q; the Publisher vouches for %q", got, want)
	}
}
