package server

import (
	"google.golang.org/protobuf/encoding/protowire"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// A large Publish's bytes payload is decoded in place: the request is read
// into a slice of its own, and the payload the broker retains is that
// slice's bytes rather than a copy of them. The generated decoder copies a
// bytes field into memory of its own, in one copy that cannot be preempted:
// for a 1 MiB message that was a millisecond or more of fresh pages being
// touched, during which a collection waiting to stop the world waited too,
// and twice the allocations a message needs (issue #13 (b), 1 MiB messages
// to new rooms, where that copy was four fifths of the server's memmove).
// The request's other bytes are kept with the payload: a sixteenth of it at
// most, or the request is decoded as any other.

// inPlaceMin is the smallest request decoded in place: below it the copy
// costs less than the slice it takes, and the request is read into a
// pooled buffer instead.
const inPlaceMin = 64 << 10

// Field numbers of PublishRequest's payload.
var (
	publishData = fieldNumber(&roomcastv1.PublishRequest{}, "data")
	publishText = fieldNumber(&roomcastv1.PublishRequest{}, "text")
)

// decodePublishInPlace decodes raw into req with req's data aliasing raw,
// and reports whether it did. raw must not change afterwards: whoever holds
// req's data holds raw. It decodes nothing and reports false unless raw is
// a well-formed request whose only payload field is data, of at least
// fifteen sixteenths of raw; the caller then decodes raw as usual, which
// says what is wrong with it if anything is. What it decodes is what
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
	if at < 0 || len(data) < len(raw)-len(raw)/16 {
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
