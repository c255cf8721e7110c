package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	protoapi "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/vtcodec"
)

// frame is a SubscribeResponse already in wire form: the buffers the broker
// encoded once at publish, shared with every other subscriber's frames.
type frame struct{ bufs mem.BufferSlice }

// codec passes frames through untouched and encodes everything else with
// vtcodec: vtprotobuf's generated code for roomcast's messages, the
// standard proto codec for the rest. It is installed with grpc.ForceServerCodecV2, so it
// also serves health and reflection, which only ever see the proto path.
//
// The frame's buffers are mem.SliceBuffers: Ref and Free are no-ops on them,
// so the transport can read them while other streams do the same, and
// nothing is returned to a pool twice.
//
// Requests wrapped in a *checked are checked on their bytes before they are
// decoded (see decode.go).
type codec struct {
	proto  vtcodec.Codec
	limits requestLimits
	turns  *largeTurns // nil: no request waits for a turn
	hook   func(any)   // tests only: called before a checked request is decoded
}

func newCodec() codec { return codec{} }

// newServerCodec returns the codec the server decodes requests with,
// refusing requests past lim, large ones each in a turn of turns (nil:
// none waits).
func newServerCodec(lim requestLimits, turns *largeTurns) codec {
	c := newCodec()
	c.limits, c.turns = lim, turns
	return c
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		return f.bufs, nil
	}
	if r, ok := v.(*roomcastv1.PublishStreamResponse); ok && offsetsOnly(r) {
		return vtcodec.MarshalChecked(r) // see offsetsOnly
	}
	if r, ok := v.(*roomcastv1.SubscribeResponse); ok && joinedOrLeft(r) {
		return vtcodec.MarshalChecked(r) // see joinedOrLeft
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*checked)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	m, ok := req.msg.(protoreflect.ProtoMessage)
	if !ok {
		return fmt.Errorf("cannot decode into %T, which is not a protobuf message", req.msg)
	}
	if c.hook != nil {
		c.hook(m)
	}
	if c.takesTurn(data.Len(), m) {
		done, err := c.turns.take(req.ctx, turnClient(req.ctx), data.Len())
		if err != nil {
			req.err = err // too much waits, or the call or the server ended while it waited
			return nil
		}
		defer done()
	}
	if pr, ok := m.(*roomcastv1.PublishRequest); ok && inPlaceCandidate(data) {
		raw := data.Materialize() // a slice of its own, copied frame by frame: see publishinplace.go
		if req.err = precheck(raw, m, c.limits); req.err != nil {
			return nil
		}
		if done, err := decodePublishInPlace(raw, pr); done {
			return err
		}
		return vtcodec.Unmarshal(raw, pr)
	}
	buf := data.MaterializeToBuffer(requestPool) // copied only if the request spans frames
	defer buf.Free()
	if req.err = precheck(buf.ReadOnlyData(), m, c.limits); req.err != nil {
		return nil // the handler returns req.err
	}
	if vm, ok := m.(vtcodec.Message); ok {
		return vtcodec.Unmarshal(buf.ReadOnlyData(), vm)
	}
	return protoapi.Unmarshal(buf.ReadOnlyData(), m)
}

// codec returns the codec s decodes requests with.
func (s *Server) codec() codec {
	c := newServerCodec(s.cfg.requestLimits(), s.largeTurns)
	c.hook = s.cfg.decodeHook
	return c
}

// takesTurn reports whether a request of n bytes to be decoded into m
// waits for a turn (largeturns.go): a large one of a method whose requests
// may be that large, within its limit. Any other is refused by precheck,
// or decoded, without waiting.
func (c codec) takesTurn(n int, m any) bool {
	if !c.turns.takes(n) {
		return false
	}
	switch m.(type) {
	case *roomcastv1.PublishRequest:
		return n <= c.limits.publish
	case *roomcastv1.PublishStreamRequest:
		return n <= c.limits.publish+streamEnvelope
	case *roomcastv1.WatchRequest:
		return n <= c.limits.watch
	}
	return false
}

// turnClient is the client key of the call of ctx (its address, an IPv6
// one by its /64), whose large requests wait for their turns one at a
// time; "" if it has none.
func turnClient(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	return clientKey(p.Addr)
}

// Name is "proto": on the wire these are ordinary protobuf messages.
func (codec) Name() string { return proto.Name }
