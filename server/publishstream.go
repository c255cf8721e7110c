package server

import (
	"context"
	"io"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// publishWindow is how many of a PublishStream's publishes may be read and
// not yet answered: the stream's reader takes the next request off the
// stream only while fewer are. Past it, requests wait in gRPC's flow
// control window and then in the publisher's sends. Documented in the
// proto.
const publishWindow = 256

// A PublishStream is served by two goroutines. The reader decodes requests
// while it holds one of the window's slots; the handler publishes each
// through the same path as Publish (publish.go) and sends its answer, in
// order, then frees the slot. The broker publishes in memory without
// waiting on the network, so sequencing and answering on one goroutine
// keeps the answers in order for free, while decoding the next request
// overlaps with publishing this one.
//
// A drain, the credential's expiry or revocation (the authenticator took
// new keys without the stream's API key: see RecheckCredentials) or the end
// of the stream's context ends the stream between two publishes: every
// publish that was sequenced has been answered by then, and what the reader
// holds beyond it was not sequenced. No lock is held anywhere here; the two goroutines share only
// the channels.

// PublishStream implements BrokerService.PublishStream.
func (s *Server) PublishStream(stream grpc.BidiStreamingServer[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse]) (err error) {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "server is shutting down; publish to another instance")
	}
	ctx := stream.Context()
	id := s.access.identity(ctx)
	r := &publishReader{
		stream: stream,
		reqs:   make(chan *roomcastv1.PublishStreamRequest, publishWindow),
		slots:  make(chan struct{}, publishWindow),
	}
	s.goroutines.Add(1)
	go r.read(s)
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v, "publish stream", "")
			err = status.Error(codes.Internal, "the server failed while serving this stream; publish the unanswered messages again")
		}
	}()
	var expired <-chan time.Time
	if !id.Expiry.IsZero() {
		t := time.NewTimer(time.Until(id.Expiry))
		defer t.Stop()
		expired = t.C
	}
	for {
		select { // a drain or an expiry first, before another publish
		case <-s.drain:
			return status.Error(codes.Unavailable, "server is shutting down; publish the unanswered messages to another instance")
		case <-expired:
			return errStreamExpired
		default:
		}
		select {
		case req, ok := <-r.reqs:
			if !ok {
				return r.err
			}
			if id, err = s.access.stillAccepted(id); err != nil {
				return err
			}
			if err := stream.Send(s.publishOne(ctx, id, req)); err != nil {
				return err
			}
			<-r.slots
		case <-s.drain: // the first select returns
		case <-expired:
			return errStreamExpired
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

var errStreamExpired = status.Error(codes.Unauthenticated, "the stream's credential expired; open a new stream with a fresh one and publish the unanswered messages again")

// publishReader is a PublishStream's reader: it takes requests off the
// stream into reqs while it can take a slot, and closes reqs when the stream
// ends, after setting err.
type publishReader struct {
	stream grpc.BidiStreamingServer[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse]
	reqs   chan *roomcastv1.PublishStreamRequest // never full: it has a place for every slot
	slots  chan struct{}                         // one token per request read and not yet answered
	err    error                                 // why the stream ended: nil at the publisher's io.EOF; read after reqs is closed
}

func (r *publishReader) read(s *Server) {
	defer s.goroutines.Done()
	defer close(r.reqs)
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v, "publish stream reader", "")
			r.err = status.Error(codes.Internal, "the server failed while reading this stream; publish the unanswered messages again")
		}
	}()
	ctx := r.stream.Context()
	for {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			r.err = status.FromContextError(ctx.Err()).Err()
			return
		}
		req := new(roomcastv1.PublishStreamRequest)
		if err := r.stream.RecvMsg(req); err != nil {
			if err != io.EOF {
				r.err = err
			}
			return
		}
		r.reqs <- req
	}
}

// publishOne publishes one request of a stream by id and returns its
// answer: the offset, or the error Publish would have returned.
func (s *Server) publishOne(ctx context.Context, id *auth.Identity, req *roomcastv1.PublishStreamRequest) *roomcastv1.PublishStreamResponse {
	resp := &roomcastv1.PublishStreamResponse{Id: req.GetId()}
	var err error
	switch {
	case validateCommandID(req.GetId()) != nil:
		resp.Id = ""
		err = status.Errorf(codes.InvalidArgument, "request id must be valid UTF-8 of at most %d bytes", maxCommandIDLen)
	case req.GetPublish() == nil:
		err = status.Error(codes.InvalidArgument, "request has no publish")
	default:
		var ok *roomcastv1.PublishResponse
		if ok, err = s.publish(ctx, id, req.GetPublish()); err == nil {
			resp.Result = &roomcastv1.PublishStreamResponse_Ok{Ok: ok}
			return resp
		}
	}
	resp.Result = &roomcastv1.PublishStreamResponse_Error{Error: errorOf(err)}
	return resp
}

// errorOf is the Error a reply carries for err: its gRPC code and message,
// and the delay of a RetryInfo detail, such as a rate limit's.
func errorOf(err error) *roomcastv1.Error {
	st := status.Convert(err)
	e := &roomcastv1.Error{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok && r.GetRetryDelay() != nil {
			e.RetryAfter = durationpb.New(r.GetRetryDelay().AsDuration())
		}
	}
	return e
}

// stillAccepted rechecks a publish stream's credential before each publish,
// as RecheckCredentials does a Subscribe stream's: it returns id while the
// authenticator accepts it as it is (one atomic load while its keys have not
// changed), and the status that ends the stream otherwise: UNAUTHENTICATED
// for a credential it no longer accepts, UNAVAILABLE for an API key that has
// another subject or other grants now, so that the client reconnects with
// them.
func (a *access) stillAccepted(id *auth.Identity) (*auth.Identity, error) {
	if a.authn == nil {
		return id, nil
	}
	now, err := a.authn.Recheck(id)
	switch {
	case err != nil:
		return nil, status.Errorf(codes.Unauthenticated, "%v; this stream ends: publish the unanswered messages on a new stream with a valid credential", err)
	case now != id:
		return nil, status.Error(codes.Unavailable, "this stream's API key has another subject or other grants on the server now: publish the unanswered messages on a new stream to use it as it is")
	}
	return id, nil
}
