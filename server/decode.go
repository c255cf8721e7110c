package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A request is checked on its bytes before it is decoded: against the size
// its RPC needs, and for the map entries it holds, which cost far more to
// decode than their bytes suggest (a 1 MB PublishRequest of 87,000 headers
// takes 83.5 ms). The checks run in the codec, the one place that sees both
// the bytes and the message they are for, on requests that the service's
// handlers hand it wrapped in a *checked: grpc-go turns any error of a
// codec into INTERNAL, so the codec leaves its verdict in the wrapper for
// the handler to return with the right code.

// Request size limits of the RPCs whose requests are small. Publish's is the
// message limit plus messageOverhead.
const (
	// maxCommandBytes bounds a Subscribe command: a refresh carries a token
	// of up to auth.MaxTokenLen (8 KiB), a join at most 1 KiB of info.
	maxCommandBytes = 16 << 10
	// maxQueryBytes bounds a History or Presence request: a room name of at
	// most 200 bytes and a few numbers.
	maxQueryBytes = 4 << 10
	// streamEnvelope is what a PublishStreamRequest may add to the
	// PublishRequest it carries: an id of up to 128 bytes and field tags.
	// A batch's publishes share the request's limit, as the gRPC receive
	// limit (the message limit plus messageOverhead) has them do anyway.
	streamEnvelope = 256
)

// Map fields counted before decoding, with the limits validate.go applies
// to what they decode to.
var (
	publishHeaders = fieldNumber(&roomcastv1.PublishRequest{}, "headers")
	streamPublish  = fieldNumber(&roomcastv1.PublishStreamRequest{}, "publish")
	streamBatch    = fieldNumber(&roomcastv1.PublishStreamRequest{}, "batch")
	itemPublish    = fieldNumber(&roomcastv1.PublishStreamItem{}, "publish")
	subscribeJoin  = fieldNumber(&roomcastv1.SubscribeRequest{}, "join")
	joinInfo       = fieldNumber(&roomcastv1.JoinCommand{}, "info")
	watchRooms     = fieldNumber(&roomcastv1.WatchRequest{}, "rooms")
)

func fieldNumber(m protoreflect.ProtoMessage, name protoreflect.Name) protowire.Number {
	return m.ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// checked is a request on its way to the codec, which checks it before
// decoding into msg and leaves in err why it refused it, if it did.
type checked struct {
	msg any
	err error
	ctx context.Context // the call's: a large request waits for its turn while it lasts
}

// requestLimits are the size limits of the requests whose limit depends on
// the server's options.
type requestLimits struct {
	publish int // a PublishRequest's: the message limit plus messageOverhead
	watch   int // a WatchRequest's: maxWatchBytes
}

// checkedCall decodes a unary call's request through the codec's checks:
// it holds the wrapper the request is handed to the codec in (which
// escapes to it) and the function the generated handler decodes with,
// bound once per pooled value rather than a closure made per call.
type checkedCall struct {
	c       checked
	ctx     context.Context // the call's
	dec     func(any) error // the call's, grpc-go's
	decode  func(any) error // run, bound
	refused error           // why dec failed, if it did
}

// run decodes the call's request into v, unless it is over its limits.
func (cc *checkedCall) run(v any) error {
	cc.c.msg, cc.c.ctx = v, cc.ctx
	err := cc.dec(&cc.c)
	if err == nil {
		err = cc.c.err
	}
	cc.c = checked{}
	cc.refused = err
	return err
}

// checkedCalls holds the checkedCalls of finished calls: two allocations
// per unary call fewer.
var checkedCalls = sync.Pool{New: func() any {
	cc := new(checkedCall)
	cc.decode = cc.run
	return cc
}}

// precheck returns the status refusing request b, to be decoded into v, or
// nil.
func precheck(b []byte, v any, lim requestLimits) error {
	maxPublish := lim.publish
	switch v.(type) {
	case *roomcastv1.PublishRequest:
		if len(b) > maxPublish {
			return status.Errorf(codes.ResourceExhausted, "the request is %d bytes; the limit is %d", len(b), maxPublish)
		}
		if n := countField(b, publishHeaders); n > maxHeaders {
			return status.Errorf(codes.InvalidArgument, "%d headers; the limit is %d", n, maxHeaders)
		}
	case *roomcastv1.PublishStreamRequest:
		if len(b) > maxPublish+streamEnvelope {
			return status.Errorf(codes.ResourceExhausted, "a publish of %d bytes; the limit is %d", len(b), maxPublish+streamEnvelope)
		}
		publishes, headers := publishCounts(b)
		if publishes > maxBatchItems {
			return status.Errorf(codes.InvalidArgument, "a request of %d publishes; the limit is %d, its own and its batch's", publishes, maxBatchItems)
		}
		if headers > maxHeaders {
			return status.Errorf(codes.InvalidArgument, "a publish with %d headers; the limit is %d", headers, maxHeaders)
		}
	case *roomcastv1.SubscribeRequest:
		if len(b) > maxCommandBytes {
			return status.Errorf(codes.ResourceExhausted, "a command of %d bytes; the limit is %d", len(b), maxCommandBytes)
		}
		if n := countNested(b, subscribeJoin, joinInfo); n > maxInfoEntries {
			return status.Errorf(codes.InvalidArgument, "a join's presence info has %d entries; the limit is %d", n, maxInfoEntries)
		}
	case *roomcastv1.WatchRequest:
		if len(b) > lim.watch {
			return status.Errorf(codes.ResourceExhausted, "a Watch request of %d bytes; the limit is %d", len(b), lim.watch)
		}
		if n := maxNested(b, watchRooms, joinInfo); n > maxInfoEntries {
			return status.Errorf(codes.InvalidArgument, "a room's presence info has %d entries; the limit is %d", n, maxInfoEntries)
		}
	case *roomcastv1.HistoryRequest, *roomcastv1.PresenceRequest:
		if len(b) > maxQueryBytes {
			return status.Errorf(codes.ResourceExhausted, "the request is %d bytes; the limit is %d", len(b), maxQueryBytes)
		}
	}
	return nil
}

// countField counts the occurrences of field num in message b, each a map
// entry if it is a map field. It stops at the first malformed field,
// leaving the decoder to report it.
func countField(b []byte, num protowire.Number) int {
	n := 0
	for len(b) > 0 {
		f, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(f, typ, b)
		if l < 0 {
			return n
		}
		if f == num {
			n++
		}
		b = b[l:]
	}
	return n
}

// countNested counts the occurrences of field inner in every occurrence of
// the message field outer of message b (a join's info entries, a stream's
// publish's headers): occurrences of a message field are merged, so their
// maps add up.
func countNested(b []byte, outer, inner protowire.Number) int {
	n := 0
	eachMessage(b, outer, func(m []byte) { n += countField(m, inner) })
	return n
}

// maxNested is countNested's largest count in one occurrence of outer: each
// room of a WatchRequest is a join of its own, with its own info.
func maxNested(b []byte, outer, inner protowire.Number) int {
	most := 0
	eachMessage(b, outer, func(m []byte) { most = max(most, countField(m, inner)) })
	return most
}

// publishCounts returns how many publishes PublishStreamRequest b carries,
// its own and its batch's, and the most headers of one of them.
func publishCounts(b []byte) (publishes, mostHeaders int) {
	publishes = 1
	mostHeaders = countNested(b, streamPublish, publishHeaders)
	eachMessage(b, streamBatch, func(m []byte) {
		publishes++
		mostHeaders = max(mostHeaders, countNested(m, itemPublish, publishHeaders))
	})
	return publishes, mostHeaders
}

// eachMessage calls fn with every occurrence of the message field outer of
// message b. It stops at the first malformed field, leaving the decoder to
// report it.
func eachMessage(b []byte, outer protowire.Number, fn func(m []byte)) {
	for len(b) > 0 {
		f, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return
		}
		b = b[l:]
		if f == outer && typ == protowire.BytesType {
			m, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return
			}
			fn(m)
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(f, typ, b)
		if l < 0 {
			return
		}
		b = b[l:]
	}
}

// checkRequests makes the handlers of desc, a copy of the generated
// description, hand their requests to the codec wrapped in a *checked, and
// return its verdict. A request refused before it is decoded is reported to
// the *Server the call is for (refusedRequest): a unary call's refusal is
// returned before any interceptor runs.
func checkRequests(desc *grpc.ServiceDesc) {
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		handler := desc.Methods[i].Handler
		method := "/" + desc.ServiceName + "/" + desc.Methods[i].MethodName
		desc.Methods[i].Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (resp any, err error) {
			// A generated handler decodes before it returns, and keeps
			// nothing of its decoding function: cc is free once it has.
			cc := checkedCalls.Get().(*checkedCall)
			cc.dec, cc.ctx = dec, ctx
			defer recoverDecode(srv, ctx, &resp, &err) // cc, which a panic left half-set, is not put back
			resp, err = handler(srv, ctx, cc.decode, interceptor)
			if cc.refused != nil {
				if s, ok := srv.(*Server); ok {
					s.refusedRequest(ctx, method, cc.refused)
				}
				cc.refused = nil
			}
			cc.dec, cc.ctx = nil, nil
			checkedCalls.Put(cc)
			return resp, err
		}
	}
	desc.Streams = append([]grpc.StreamDesc(nil), desc.Streams...)
	for i := range desc.Streams {
		handler := desc.Streams[i].Handler
		method := "/" + desc.ServiceName + "/" + desc.Streams[i].StreamName
		desc.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error {
			s, _ := srv.(*Server)
			return handler(srv, &checkedStream{ServerStream: stream, srv: s, method: method})
		}
	}
}

// recoverDecode, deferred by a unary call's checked handler, ends the call
// with INTERNAL after a panic while its request was decoded, which comes
// before the interceptors that recover the rest of the call (unaryCalls):
// grpc-go recovers nothing, and the panic would end the process. It is
// logged with its stack and counted, as any other.
func recoverDecode(srv any, ctx context.Context, resp *any, err *error) {
	p := recover()
	if p == nil {
		return
	}
	s, ok := srv.(*Server)
	if !ok {
		panic(p)
	}
	*resp, *err = nil, s.callPanicked(ctx, p)
}

// checkedStream hands every request it receives to the codec wrapped, and
// returns the codec's verdict. Like any grpc.ServerStream, it must not
// receive from two goroutines at once.
type checkedStream struct {
	grpc.ServerStream
	c      checked // reused: one request at a time
	srv    *Server // told of refused requests; nil: none is
	method string  // the stream's full method name
}

// RecvMsg receives the next request into m, unless it is over its limits.
func (s *checkedStream) RecvMsg(m any) error {
	s.c = checked{msg: m, ctx: s.Context()}
	err := s.ServerStream.RecvMsg(&s.c)
	if err == nil {
		err = s.c.err
	}
	s.c = checked{}
	if err != nil && s.srv != nil {
		s.srv.refusedRequest(s.Context(), s.method, err)
	}
	return err
}
