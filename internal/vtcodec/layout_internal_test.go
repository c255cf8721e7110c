package vtcodec

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Each message type has one layout, whether found among the known ones or
// past them in layouts, and a known one is found without allocating.
func TestLayoutOfIsOnePerMessage(t *testing.T) {
	var mds []protoreflect.MessageDescriptor
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Messages().Len() {
			mds = append(mds, f.Messages().Get(i))
		}
		return len(mds) < 3*maxKnown
	})
	if len(mds) <= maxKnown {
		t.Fatalf("%d message types registered, want more than %d", len(mds), maxKnown)
	}
	for round := range 2 {
		for _, md := range mds {
			l := layoutOf(md)
			v, ok := layouts.Load(md)
			if !ok || v.(*layout) != l {
				t.Fatalf("round %d: %s: layout %p, layouts holds %v", round, md.FullName(), l, v)
			}
		}
	}
	if n := len(*known.Load()); n > maxKnown {
		t.Errorf("%d known layouts, bound %d", n, maxKnown)
	}
	md := (&roomcastv1.Message{}).ProtoReflect().Descriptor()
	layoutOf(md)
	if allocs := testing.AllocsPerRun(100, func() { layoutOf(md) }); allocs != 0 {
		t.Errorf("%v allocations to find a layout", allocs)
	}
}
