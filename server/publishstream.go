package server

import (
	"context"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/broker"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/window"
	"github.com/roomcast/roomcast/internal/wire"
)

// publishWindow is how many of a PublishStream's publishes may be read and
// not yet answered: the stream's reader takes the next request off the
// stream only while fewer are. Past it, requests wait in gRPC's flow
// control window and then in the publisher's sends. Documented in the
// proto.
const publishWindow = 256

// publishReadAhead is how many bytes of a PublishStream's requests its
// reader may hold decoded and not yet answered, beside publishWindow's
// count: a publisher that stops reading its answers blocks the handler in
// Send, and the reader read on up to the window, 256 requests of up to
// --max-message-bytes each (a review held 130 MiB with one stream so). At
// least one request always fits (see publishReader.budget). A request of
// 256 publishes of 1 KiB is 260 KiB: four are read ahead.
const publishReadAhead = 1 << 20

// maxBatchItems is the most publishes one PublishStreamRequest may carry,
// its own and its batch's: the window, so that the reader can always take
// a slot for each of them. Documented in the proto.
const maxBatchItems = publishWindow

// A PublishStream is served by two goroutines. The reader decodes requests
// while it holds one of the window's slots, and takes one more for each
// publish of a request's batch before it hands the request on; the handler
// publishes each of a request's publishes through the same path as Publish
// (publish.go), sends the request's answers, in order, in one response,
// then frees the request's slots, together (a count, internal/window,
// rather than a channel operation per publish on each side). The broker publishes in memory without
// waiting on the network, so sequencing and answering on one goroutine
// keeps the answers in order for free, while decoding the next request
// overlaps with publishing this one.
//
// A drain, the credential's expiry or revocation (the authenticator took
// new keys without the stream's API key: see RecheckCredentials) or the end
// of the stream's context ends the stream between two requests: every
// publish that was sequenced has been answered by then, and what the reader
// holds beyond it was not sequenced. The two goroutines share the
// channels, the window (a count under its own lock, held for no wait), and
// the pause after a refusal (see publishrefusal.go).

// PublishStream implements BrokerService.PublishStream.
func (s *Server) PublishStream(stream grpc.BidiStreamingServer[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse]) (err error) {
	if s.isDraining() {
		return status.Error(codes.Unavailable, "server is shutting down; publish to another instance")
	}
	ctx := stream.Context()
	id := s.access.identity(ctx)
	// Before the first answer, so that a publisher knows at once that it
	// may batch. A failure means the stream is over, which Recv will tell.
	_ = stream.SendHeader(metadata.Pairs(wire.PublishBatchItemsHeader, strconv.Itoa(maxBatchItems), wire.PublishBatchBytesHeader, strconv.Itoa(s.cfg.requestLimits().publish)))
	rec := recordOf(ctx)
	// The owner every publish is charged to, once for the stream: its
	// identity's subject cannot change (stillAccepted ends the stream).
	octx := broker.WithOwner(ctx, id.Subject)
	budget := max(publishReadAhead, s.cfg.requestLimits().publish)
	r := &publishReader{
		stream: stream,
		reqs:   make(chan readRequest, publishWindow),
		slots:  window.New(publishWindow),
		bytes:  window.New(budget),
		budget: budget,
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
		case read, ok := <-r.reqs:
			if !ok {
				return r.err
			}
			req := read.req
			if id, err = s.access.stillAccepted(id); err != nil {
				return err
			}
			resp := s.publishRequest(octx, id, rec, req)
			if hasRefusal(resp) {
				r.refusals.refused() // the reader pauses before its next read
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			r.slots.Release(1 + len(req.GetBatch()))
			r.bytes.Release(read.size)
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
	reqs   chan readRequest // never full: it has a place for every slot
	slots  *window.Places   // one per publish read and not yet answered
	bytes  *window.Places   // one per byte of the requests read and not yet answered
	budget int              // bytes' size: at least the largest request allowed
	err    error            // why the stream ended: nil at the publisher's io.EOF; read after reqs is closed

	refusals publishRefusals // the pause the handler's refusals earn the reader; see publishrefusal.go
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
		if !r.pauseReading(s) {
			r.err = status.FromContextError(ctx.Err()).Err()
			return
		}
		if err := r.slots.Acquire(ctx, 1, nil); err != nil {
			r.err = status.FromContextError(err).Err()
			return
		}
		req := new(roomcastv1.PublishStreamRequest)
		if err := r.stream.RecvMsg(req); err != nil {
			if err != io.EOF {
				r.err = err
			}
			return
		}
		// The window counts publishes: the batch's are taken at once, when
		// that many are free together.
		if err := r.slots.Acquire(ctx, len(req.GetBatch()), nil); err != nil {
			r.err = status.FromContextError(err).Err()
			return
		}
		// And its bytes: past the budget, the reader waits with this one
		// request in hand, and the rest wait in flow control.
		size := min(req.SizeVT(), r.budget)
		if err := r.bytes.Acquire(ctx, size, nil); err != nil {
			r.err = status.FromContextError(err).Err()
			return
		}
		r.reqs <- readRequest{req: req, size: size}
	}
}

// readRequest is a request the reader handed on, with the bytes of the
// budget it took.
type readRequest struct {
	req  *roomcastv1.PublishStreamRequest
	size int
}

// publishRequest publishes a request's publishes in order by id and
// returns their answers in one response: each its offset, or the error
// Publish would have returned. ctx names id's subject as the owner.
func (s *Server) publishRequest(ctx context.Context, id *auth.Identity, rec *callRecord, req *roomcastv1.PublishStreamRequest) *roomcastv1.PublishStreamResponse {
	batch := req.GetBatch()
	// One allocation for each kind of value the answers hold, rather than
	// one of each per publish.
	oks := make([]roomcastv1.PublishResponse, 1+len(batch))
	resp := &roomcastv1.PublishStreamResponse{}
	var e *roomcastv1.Error
	if resp.Id, e = s.publishOne(ctx, id, rec, req.GetId(), req.GetPublish(), &oks[0]); e != nil {
		resp.Result = &roomcastv1.PublishStreamResponse_Error{Error: e}
	} else {
		resp.Result = &roomcastv1.PublishStreamResponse_Ok{Ok: &oks[0]}
	}
	if len(batch) == 0 {
		return resp
	}
	results := make([]roomcastv1.PublishStreamResult, len(batch))
	okResults := make([]roomcastv1.PublishStreamResult_Ok, len(batch))
	resp.Batch = make([]*roomcastv1.PublishStreamResult, len(batch))
	shared := sharedRefusal(resp.GetError()) // see publishrefusal.go
	for i, item := range batch {
		r, ok := &results[i], &oks[1+i]
		if shared != nil && validateCommandID(item.GetId()) == nil {
			r.Id, r.Result = item.GetId(), shared
			rec.publish("", false)
		} else if r.Id, e = s.publishOne(ctx, id, rec, item.GetId(), item.GetPublish(), ok); e != nil {
			r.Result = &roomcastv1.PublishStreamResult_Error{Error: e}
			if shared == nil {
				shared = sharedRefusal(e)
			}
		} else {
			okResults[i].Ok = ok
			r.Result = &okResults[i]
		}
		resp.Batch[i] = r
	}
	return resp
}

// publishOne publishes one publish of a stream by id, and returns the id
// its answer echoes and, if it was refused, the error Publish would have
// returned; if not, its offset and epoch are in ok.
func (s *Server) publishOne(ctx context.Context, id *auth.Identity, rec *callRecord, reqID string, pub *roomcastv1.PublishRequest, ok *roomcastv1.PublishResponse) (string, *roomcastv1.Error) {
	var err error
	switch {
	case validateCommandID(reqID) != nil:
		return "", errorOf(status.Errorf(codes.InvalidArgument, "request id must be valid UTF-8 of at most %d bytes", maxCommandIDLen))
	case pub == nil:
		err = status.Error(codes.InvalidArgument, "request has no publish")
	default:
		ok.Offset, ok.Epoch, err = s.publish(ctx, id, pub, new(outgoing))
		rec.publish(pub.GetRoom(), err == nil)
		if err == nil {
			return reqID, nil
		}
	}
	return reqID, errorOf(err)
}

// offsetsOnly reports whether every answer of resp is an offset, none an
// error, and its epochs are valid UTF-8. Its strings are then valid UTF-8
// without the codec's walk over the encoding: each id is one that
// validateCommandID took (publishOne answers any other with ""), and the
// epochs, checked here, repeat but when a room is made again, so checking
// each new one costs a comparison per answer. The codec leaves the walk
// out for such a response; an error's message is the server's text around
// a client's strings, and keeps it.
func offsetsOnly(resp *roomcastv1.PublishStreamResponse) bool {
	ok := resp.GetOk()
	if ok == nil || !utf8.ValidString(ok.GetEpoch()) {
		return false
	}
	epoch := ok.GetEpoch()
	for _, r := range resp.GetBatch() {
		ok := r.GetOk()
		if ok == nil {
			return false
		}
		if ok.GetEpoch() != epoch {
			if epoch = ok.GetEpoch(); !utf8.ValidString(epoch) {
				return false
			}
		}
	}
	return true
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

// stillAccepted rechecks a publish stream's credential before each request
// (once for all of a batch), as RecheckCredentials does a Subscribe
// stream's: it returns id while the authenticator accepts it as it is (one
// atomic load while its keys have not changed), and the status that ends
// the stream otherwise: UNAUTHENTICATED for a credential it no longer
// accepts, UNAVAILABLE for an API key that has another subject or other
// grants now, so that the client reconnects with them.
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
