// Package protostrings lists the string fields a message can carry, for
// tests of code that encodes messages without proto's UTF-8 check because
// it validated their strings itself: such a test fails when a string field
// is added that the code does not know.
package protostrings

import (
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Fields returns the full names of the string fields of md and of every
// message it holds, map keys and values included (as "field[key]" and
// "field[value]"), sorted, leaving out the messages skip reports (nil skips
// none).
func Fields(md protoreflect.MessageDescriptor, skip func(protoreflect.MessageDescriptor) bool) []string {
	seen := map[protoreflect.FullName]bool{}
	var out []string
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || (skip != nil && skip(md)) {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsMap() {
				if fd.MapKey().Kind() == protoreflect.StringKind {
					out = append(out, string(fd.FullName())+"[key]")
				}
				if v := fd.MapValue(); v.Kind() == protoreflect.StringKind {
					out = append(out, string(fd.FullName())+"[value]")
				} else if v.Message() != nil {
					walk(v.Message())
				}
				continue
			}
			switch {
			case fd.Kind() == protoreflect.StringKind:
				out = append(out, string(fd.FullName()))
			case fd.Message() != nil:
				walk(fd.Message())
			}
		}
	}
	walk(md)
	slices.Sort(out)
	return out
}
