package server

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// frame is a SubscribeResponse already in wire form: the buffers the broker
// encoded once at publish, shared with every other subscriber's frames.
type frame struct{ bufs mem.BufferSlice }

// codec passes frames through untouched and encodes everything else with the
// standard proto codec. It is installed with grpc.ForceServerCodecV2, so it
// also serves health and reflection, which only ever see the proto path.
//
// The frame's buffers are mem.SliceBuffers: Ref and Free are no-ops on them,
// so the transport can read them while other streams do the same, and
// nothing is returned to a pool twice.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2(proto.Name)} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return f.bufs, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Name is "proto": on the wire these are ordinary protobuf messages.
func (codec) Name() string { return proto.Name }
