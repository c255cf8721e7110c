package server

import (
	"context"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A unary Publish over gRPC is served by publishMethod rather than the
// generated handler, which makes the call's UnaryServerInfo and a closure
// over the service for every call: the Server makes both once
// (publishCalls). Its answer leaves encoded (publishReply), in one
// allocation where a PublishResponse and its encoding by the codec take
// three, and that in the request's own (unaryPublish) when only the
// server's interceptors see the request. Publish stays the method for callers in this process and for the
// web handler, and both run publishUnary, so the two cannot drift apart.

// publishCalls is what publishMethod hands the interceptors of every call:
// the call's information and its handler, bound to the Server once. Unlike
// the generated handler's, info is shared by every call: an interceptor
// must not change it.
type publishCalls struct {
	info    grpc.UnaryServerInfo
	handler grpc.UnaryHandler
	// rest runs the server's interceptors after the first around handler,
	// as unaryChain binds them; nil if unaryChain does not use it.
	rest grpc.UnaryHandler
	// own is whether the server's own interceptors are the only ones (none
	// came with WithGRPCOptions), so that a call's request may be handed
	// to them as a *unaryPublish.
	own bool
}

// initPublishCalls binds s's publishCalls; New calls it before serving.
func (s *Server) initPublishCalls() {
	s.publishCalls = publishCalls{
		info:    grpc.UnaryServerInfo{Server: s, FullMethod: roomcastv1.BrokerService_Publish_FullMethodName},
		handler: s.publishCall,
	}
}

// publishMethod is BrokerService.Publish's grpc.MethodHandler: it decodes
// the request as the generated handler does, then runs the interceptors
// with the Server's publishCalls.
func publishMethod(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s, ok := srv.(*Server)
	if !ok {
		return nil, status.Errorf(codes.Internal, "Publish is served by %T, not a *server.Server", srv)
	}
	if interceptor != nil && s.publishCalls.own {
		c := new(unaryPublish)
		if err := dec(&c.PublishRequest); err != nil {
			return nil, err
		}
		resp, err := interceptor(ctx, c, &s.publishCalls.info, s.publishCalls.handler)
		c.PublishRequest.Reset() // the reply may be held a while: it holds none of the request
		return resp, err
	}
	req := new(roomcastv1.PublishRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return s.publishCall(ctx, req)
	}
	return interceptor(ctx, req, &s.publishCalls.info, s.publishCalls.handler)
}

// unaryPublish is a unary Publish's request and the memory of its answer,
// in one allocation where they took two. The server's own interceptors
// (publishCalls.own) are handed it as the request: they ask it for no
// more than its getters, which it has from the request it embeds. An
// interceptor of WithGRPCOptions may expect a *PublishRequest, and is
// given one. Once the interceptors have returned, the request is reset,
// so that its answer, which grpc-go holds until the client's flow-control
// window lets it out, holds nothing of it, its payload least of all.
type unaryPublish struct {
	roomcastv1.PublishRequest
	reply publishReply
}

// publishCall is the grpc.UnaryHandler of a unary Publish: publishUnary,
// answered with a publishReply, the one of req if it is a *unaryPublish.
// The reply never shares an allocation with the message: grpc-go holds it
// until the client's flow-control window lets it out, which the client
// decides, and the message's payload would be held as long.
func (s *Server) publishCall(ctx context.Context, req any) (any, error) {
	var r *roomcastv1.PublishRequest
	var reply *publishReply
	switch v := req.(type) {
	case *unaryPublish:
		r, reply = &v.PublishRequest, &v.reply
	case *roomcastv1.PublishRequest:
		r = v
	default: // an interceptor replaced it
		return nil, status.Errorf(codes.Internal, "a Publish request of type %T", req)
	}
	off, epoch, err := s.publishUnary(ctx, r, new(outgoing))
	if err != nil {
		return nil, err
	}
	if reply == nil {
		reply = new(publishReply)
	}
	return reply.answer(off, epoch), nil
}

// publishReply is a PublishResponse already encoded as a frame, which the
// codec passes through: the frame, its buffer and the bytes in one
// allocation.
type publishReply struct {
	frame
	slice [1]mem.Buffer
	buf   mem.SliceBuffer
	bytes [publishReplyBytes]byte
}

// publishReplyBytes holds any offset and an epoch of up to 35 bytes; the
// broker's are 13 (newEpoch).
const publishReplyBytes = 48

// answer returns the answer of a publish at offset off in epoch: r, made
// into its frame, or, for an epoch too long for r or not valid UTF-8
// (which the codec's encoding then refuses as proto would), a
// PublishResponse.
func (r *publishReply) answer(off uint64, epoch string) any {
	resp := roomcastv1.PublishResponse{Offset: off, Epoch: epoch}
	n := resp.SizeVT()
	if n > publishReplyBytes || !utf8.ValidString(epoch) {
		return &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}
	}
	if _, err := resp.MarshalToSizedBufferVT(r.bytes[:n]); err != nil { // sized by SizeVT, no nested messages: cannot fail
		return &roomcastv1.PublishResponse{Offset: off, Epoch: epoch}
	}
	r.buf = r.bytes[:n]
	r.slice[0] = &r.buf // a pointer: the buffer is boxed in place, not copied out
	r.bufs = r.slice[:]
	return &r.frame // what the codec passes through
}
