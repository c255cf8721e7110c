package vtcodec

import (
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldKind is what the UTF-8 walk does with a field.
type fieldKind uint8

const (
	skipField    fieldKind = iota // not a string, nor a message holding one
	stringField                   // a string proto checks for UTF-8
	messageField                  // a message (or map entry) holding strings
)

// layout is what the walk needs of a message: for each field number up to
// the highest that matters, its kind, and for messages, their layout.
// Slices rather than maps: the walk looks a field up per field it reads.
type layout struct {
	kinds []fieldKind
	subs  []*layout
	// unindexed: the message has fields past maxIndexed, which the
	// walk leaves to proto.
	unindexed bool
	// declared: for a well-known type's message (google.protobuf.*), its
	// field numbers; the walk leaves one with any other field to proto,
	// which keeps unknown fields where the generated code's well-known
	// types drop them. Nil for others, whose generated code keeps them.
	declared []bool
}

// undeclared reports whether l is a well-known type's and has no field
// num.
func (l *layout) undeclared(num protowire.Number) bool {
	return l.declared != nil && (int(num) >= len(l.declared) || !l.declared[num])
}

// kind returns the kind of field num.
func (l *layout) kind(num protowire.Number) fieldKind {
	if int(num) < len(l.kinds) {
		return l.kinds[num]
	}
	return skipField
}

// set sets the kind of field num, and its layout if it is a message.
func (l *layout) set(num protowire.Number, k fieldKind, sub *layout) {
	for int(num) >= len(l.kinds) {
		l.kinds, l.subs = append(l.kinds, skipField), append(l.subs, nil)
	}
	l.kinds[num], l.subs[num] = k, sub
}

// maxIndexed is the highest field number a layout indexes.
const maxIndexed = 1 << 10

// layouts caches the layouts by message descriptor.
var layouts sync.Map // protoreflect.MessageDescriptor -> *layout

// known holds the first layouts made, for a lookup by comparison before
// layouts': a process encodes a handful of message types, and hashing the
// descriptor, an interface, for sync.Map cost every encode more than
// comparing it with a few (1.3% of a unary Publish's server CPU,
// BenchmarkPublishServe). It is replaced whole, never changed.
var known atomic.Pointer[[]knownLayout]

type knownLayout struct {
	md protoreflect.MessageDescriptor
	l  *layout
}

// maxKnown bounds known: past it, layouts alone hold the rest.
const maxKnown = 16

// layoutOf returns md's layout.
func layoutOf(md protoreflect.MessageDescriptor) *layout {
	if k := known.Load(); k != nil {
		for _, e := range *k {
			if e.md == md {
				return e.l
			}
		}
	}
	var l *layout
	if v, ok := layouts.Load(md); ok {
		l = v.(*layout)
	} else {
		v, _ = layouts.LoadOrStore(md, buildLayout(md, make(map[protoreflect.FullName]*layout)))
		l = v.(*layout)
	}
	for {
		k := known.Load()
		if k != nil && (len(*k) >= maxKnown || slices.ContainsFunc(*k, func(e knownLayout) bool { return e.md == md })) {
			return l
		}
		var next []knownLayout
		if k != nil {
			next = slices.Clone(*k)
		}
		next = append(next, knownLayout{md, l})
		if known.CompareAndSwap(k, &next) {
			return l
		}
	}
}

// buildLayout makes md's layout; seen holds those being made, for
// recursive messages.
func buildLayout(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*layout) *layout {
	if l, ok := seen[md.FullName()]; ok {
		return l
	}
	l := new(layout)
	seen[md.FullName()] = l
	fields := md.Fields()
	if md.FullName().Parent() == "google.protobuf" {
		l.declared = []bool{}
		for i := range fields.Len() {
			num := int(fields.Get(i).Number())
			for num >= len(l.declared) {
				l.declared = append(l.declared, false)
			}
			l.declared[num] = true
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Number() > maxIndexed {
			// Past what a slice should hold: proto decides for the
			// messages that use such numbers.
			l.unindexed = true
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if checksUTF8(fd) {
				l.set(fd.Number(), stringField, nil)
			}
		case protoreflect.MessageKind:
			l.set(fd.Number(), messageField, buildLayout(fd.Message(), seen))
		}
	}
	return l
}

// checksUTF8 reports whether proto checks fd's values for UTF-8: proto3's
// strings, and editions' unless they say otherwise.
func checksUTF8(fd protoreflect.FieldDescriptor) bool {
	switch fd.ParentFile().Syntax() {
	case protoreflect.Proto2:
		return false
	case protoreflect.Proto3:
		return true
	}
	// Editions: the option is not in protoreflect's API; check, as proto
	// does by default.
	return true
}

// validUTF8 reports whether the strings that proto checks in b, a message
// of type md, are valid UTF-8. Bytes it cannot parse make it say false, so
// that proto has the last word.
func validUTF8(b []byte, md protoreflect.MessageDescriptor) bool {
	return layoutOf(md).valid(b)
}

func (l *layout) valid(b []byte) bool {
	if l.unindexed {
		return false
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || !num.IsValid() || n != protowire.SizeTag(num) {
			// The generated code takes field numbers that proto refuses,
			// and keeps an unknown field's tag as it came where proto
			// encodes it again in fewest bytes.
			return false
		}
		b = b[n:]
		if l.undeclared(num) {
			return false
		}
		if typ != protowire.BytesType {
			if l.kind(num) != skipField {
				// A string or a message must come length-delimited:
				// proto keeps one that does not as an unknown field,
				// where the generated code reads a map entry's key and
				// value whatever their wire type.
				return false
			}
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch l.kind(num) {
		case stringField:
			if !utf8.Valid(v) {
				return false
			}
		case messageField:
			if !l.subs[num].valid(v) {
				return false
			}
		}
	}
	return true
}
