package server

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// A large unary Publish's bytes payload is decoded in place: the request
// is read from its frames into a slice of its own, and the payload the
// broker retains is that slice's bytes rather than a copy of them.
//
// The generated decoder copies a bytes field into memory of its own, in one
// copy that cannot be preempted: for a 1 MiB message, a millisecond or more
// of fresh pages touched, while a collection waiting to stop the world
// waited too (issue #13 (b), 1 MiB messages to new rooms, where that copy
// was four fifths of the server's memmove). Decoded in place, the copy that
// is left is made frame by frame. A request over 1 MiB, past the largest
// buffer requestPool keeps, is allocated once rather than twice and decoded
// in a quarter of the time; from 64 KiB to 1 MiB it costs about what the
// pooled path does (BenchmarkDecodePublish), a slice the runtime zeroes
// rather than a second copy.
//
// The request's other bytes, at most inPlaceSlack, are kept with the
// payload and not charged to the retained-bytes budget; a request with more
// is decoded as any other. PublishStream's requests, which carry many
// messages, and the web listener's Publish are decoded as before.

// inPlaceMin is the smallest request decoded in place; below it, a copy
// into a pooled buffer and one of the payload cost no more.
const inPlaceMin = 64 << 10

// inPlaceSlack is the most bytes of a request decoded in place besides its
// payload: a room, ids and a few headers.
const inPlaceSlack = 1 << 10

// Field numbers of PublishRequest's payload.
var (
	publishData = fieldNumber(&roomcastv1.PublishRequest{}, "data")
	publishText = fieldNumber(&roomcastv1.PublishRequest{}, "text")
)

// inPlaceCandidate reports whether the request in frames, before it is
// copied out of them, looks like one decodePublishInPlace takes: its first
// frame holds a data field after fields of at most inPlaceSlack bytes, long
// enough that the request's other bytes are at most inPlaceSlack. Any other
// request (text, a small payload, a data field after many headers) is read
// into a pooled buffer, as before.
func inPlaceCandidate(frames mem.BufferSlice) bool {
	n := frames.Len()
	if n < inPlaceMin || len(frames) == 0 {
		return false
	}
	b := frames[0].ReadOnlyData()
	for off := 0; off <= inPlaceSlack && off < len(b); {
		num, typ, k := protowire.ConsumeTag(b[off:])
		if k < 0 {
			return false
		}
		if num == publishData && typ == protowire.BytesType {
			l, m := protowire.ConsumeVarint(b[off+k:])
			return m > 0 && l <= uint64(n) && n-int(l) <= inPlaceSlack
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+k:])
		if m < 0 {
			return false
		}
		off += k + m
	}
	return false
}

// decodePublishInPlace decodes raw into req with req's data aliasing raw,
// and reports whether it did. raw must not change afterwards: whoever holds
// req's data holds raw. It decodes nothing and reports false unless raw is
// a well-formed request whose only payload field is data, with at most
// inPlaceSlack bytes besides it; the caller then decodes raw as usual,
// which says what is wrong with it if anything is. What it decodes is what
// vtcodec.Unmarshal decodes from raw, down to its unknown fields.
func decodePublishInPlace(raw []byte, req *roomcastv1.PublishRequest) (bool, error) {
	var data []byte  // the payload
	at, end := -1, 0 // its field's span in raw
	for b := raw; len(b) > 0; {
		start := len(raw) - len(b)
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, nil
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return false, nil
		}
		if num == publishData || num == publishText {
			if num != publishData || typ != protowire.BytesType || at >= 0 {
				return false, nil // text, a malformed field or a second payload: as usual
			}
			v, k := protowire.ConsumeBytes(b[n:])
			if k < 0 {
				return false, nil
			}
			data, at, end = v, start, start+n+m
		}
		b = b[n+m:]
	}
	if at < 0 || len(raw)-len(data) > inPlaceSlack {
		return false, nil
	}
	rest := make([]byte, 0, len(raw)-(end-at))
	rest = append(append(rest, raw[:at]...), raw[end:]...)
	if err := vtcodec.Unmarshal(rest, req); err != nil {
		return true, err
	}
	req.Payload = &roomcastv1.PublishRequest_Data{Data: data[:len(data):len(data)]}
	return true, nil
}
