package client

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protoapi "google.golang.org/protobuf/proto"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// A PublishStream response carries one answer per message: its id, and its
// offset and epoch or an error. Decoded as a PublishStreamResponse, each
// answer costs five allocations (the result, its oneof wrapper, the
// PublishResponse, the id and the epoch) of which the Publisher keeps only
// the numbers. The stream's codec (pubCodec) decodes a response instead
// into a reused slice of answers: the id read as the number the Publisher
// sent, the epoch shared with the previous answer when it repeats it, as it
// does but when a room is recreated. Refusals, rare, keep their Error.
//
// The answers equal what proto.Unmarshal would make of the response, but
// for unknown fields, which are dropped (FuzzDecodeAnswers).

// Field numbers of the messages decoded here, from broker.proto.
const (
	ansID    = 1 // PublishStreamResponse.id, PublishStreamResult.id
	ansOk    = 2 // .ok
	ansError = 3 // .error
	ansBatch = 4 // PublishStreamResponse.batch

	okOffset = 1 // PublishResponse.offset
	okEpoch  = 2 // PublishResponse.epoch
)

// pubAnswers is one PublishStreamResponse, as the Publisher reads it: the
// response's own answer first, then its batch's. Its receiver reuses it.
type pubAnswers struct {
	items []pubItem
	epoch string // the last epoch decoded, shared by the answers that repeat it
}

// pubItem is one answer.
type pubItem struct {
	seq     uint64 // the id, when numeric: a decimal number as the Publisher writes them
	other   string // the id, when not numeric
	numeric bool
	answer  pubAnswer
}

// id is the item's id as the server sent it.
func (it *pubItem) id() string {
	if it.numeric {
		return strconv.FormatUint(it.seq, 10)
	}
	return it.other
}

// answers is request seq.
func (it *pubItem) answers(seq uint64) bool { return it.numeric && it.seq == seq }

var errBadAnswer = errors.New("malformed publish stream response")

// decode reads a PublishStreamResponse from b.
func (a *pubAnswers) decode(b []byte) error {
	clear(a.items) // drop the last response's errors
	a.items = append(a.items[:0], pubItem{})
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errBadAnswer
		}
		b = b[n:]
		if num == ansBatch && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadAnswer
			}
			a.items = append(a.items, pubItem{})
			if err := a.decodeResult(v, len(a.items)-1); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n, err := a.decodeField(b, num, typ, 0)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// decodeResult reads a PublishStreamResult from b into item i.
func (a *pubAnswers) decodeResult(b []byte, i int) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errBadAnswer
		}
		b = b[n:]
		if n, err := a.decodeField(b, num, typ, i); err != nil {
			return err
		} else {
			b = b[n:]
		}
	}
	return nil
}

// decodeField reads the value of field num, of wire type typ, at the start
// of b into item i, and returns its length. The fields id, ok and error are
// those of both the response and its batch's results; others are skipped,
// as is a known field of another wire type, which proto keeps as unknown.
func (a *pubAnswers) decodeField(b []byte, num protowire.Number, typ protowire.Type, i int) (int, error) {
	if typ != protowire.BytesType || num < ansID || num > ansError {
		n := protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, errBadAnswer
		}
		return n, nil
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errBadAnswer
	}
	it := &a.items[i]
	switch num {
	case ansID:
		if seq, ok := decimal(v); ok {
			it.seq, it.numeric, it.other = seq, true, ""
		} else if utf8.Valid(v) {
			it.seq, it.numeric, it.other = 0, false, string(v)
		} else {
			return 0, errInvalidUTF8
		}
	case ansOk:
		if it.answer.err != nil { // the oneof's last value wins
			it.answer = pubAnswer{}
		}
		if err := a.decodeOk(v, it); err != nil {
			return 0, err
		}
	case ansError:
		if it.answer.err == nil {
			it.answer = pubAnswer{err: new(roomcastv1.Error)}
		}
		if err := (protoapi.UnmarshalOptions{Merge: true}).Unmarshal(v, it.answer.err); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// decodeOk reads a PublishResponse from b into it.
func (a *pubAnswers) decodeOk(b []byte, it *pubItem) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return errBadAnswer
		}
		b = b[n:]
		switch {
		case num == okOffset && typ == protowire.VarintType:
			it.answer.offset, n = protowire.ConsumeVarint(b)
		case num == okEpoch && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				if string(v) != a.epoch { // no allocation to compare
					if !utf8.Valid(v) {
						return errInvalidUTF8
					}
					a.epoch = string(v)
				}
				it.answer.epoch = a.epoch
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadAnswer
		}
		b = b[n:]
	}
	return nil
}

// consumeTag is protowire.ConsumeTag, failing, as proto does, for field
// numbers past the largest valid one, which ConsumeTag takes.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] >= 1<<3 && b[0] < 0x80 { // a field below 16: every tag of an answer
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	num, typ, n := protowire.ConsumeTag(b)
	if num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}

// decimal is b as a decimal number written as strconv.FormatUint writes
// it: digits, without a leading zero but for 0 itself, that fit a uint64.
func decimal(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// pubCodec is the codec of a PublishStream: it decodes responses received
// into a *pubAnswers, and everything else as the proto codec does.
type pubCodec struct{ proto vtcodec.Codec }

// Marshal encodes a request without the UTF-8 walk of its strings: the
// Publisher refuses a message with an invalid one before it is queued (see
// invalidUTF8), and writes the ids itself, in decimal.
func (c pubCodec) Marshal(v any) (mem.BufferSlice, error) {
	if req, ok := v.(*roomcastv1.PublishStreamRequest); ok {
		return vtcodec.MarshalChecked(req)
	}
	return c.proto.Marshal(v)
}

func (c pubCodec) Unmarshal(data mem.BufferSlice, v any) error {
	a, ok := v.(*pubAnswers)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(receivePool) // copied only if the response spans frames
	defer buf.Free()
	if err := a.decode(buf.ReadOnlyData()); err != nil {
		return fmt.Errorf("decoding a PublishStream response: %w", err)
	}
	return nil
}

// Name is "proto": on the wire these are ordinary protobuf messages.
func (pubCodec) Name() string { return proto.Name }
