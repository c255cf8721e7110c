package client

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/window"
)

// Publisher publishes over one PublishStream, pipelined: many goroutines may
// call Publish at once, and each call returns as soon as the server has
// answered its message, while the others' messages travel on the same
// stream. It is much cheaper per message than Client.Publish when messages
// come faster than one round trip each. It is safe for concurrent use.
//
// Messages travel in batches: the Publisher's sender sends everything
// queued as one request (up to the server's batch limits, which a server
// announces on each stream; one per request to a server that announces
// none), and a message queued while nothing else is goes out at once,
// alone: batching adds no delay, only fewer requests under load.
//
// Messages sent by one goroutine, each after the previous one's Publish
// returned, are sequenced in that order. Messages of concurrent calls are
// sequenced in the order they were queued on the stream.
//
// # Connection loss
//
// When the stream ends for any reason but Close, the end of the context
// given to NewPublisher, or a permanent error (codes.Unauthenticated when
// no new token could help: without WithTokenSource, or before any answer),
// the Publisher opens a new stream with the client's backoff (see
// Backoff), and later calls use it. A call whose message was sent and not
// answered when the stream ended does not know whether it was sequenced:
// without an idempotency key it fails with an error matching
// ErrUnavailable, and publishing it again may duplicate it; with one (see
// WithIdempotencyKey) the Publisher sends it again by itself on the next
// stream, up to the client's publish attempts (WithPublishAttempts), and the
// server sequences it at most once. A call that finds no stream waits for
// the next one to open; if that attempt fails, a call without a key fails
// with ErrUnavailable (its message was not sent, so publishing it again is
// safe), and one with a key waits for the next, within its attempts.
type Publisher struct {
	c      *Client
	ctx    context.Context    // NewPublisher's: its end ends the Publisher
	pctx   context.Context    // the streams': cancelled by Close
	stop   context.CancelFunc // cancels pctx
	window *window.Places     // a place per message sent and not answered
	done   chan struct{}      // closed when run has returned

	// current is stream while the Publisher has not ended, nil otherwise:
	// what calls use without taking mu. Stored under mu.
	current atomic.Pointer[pubStream]

	mu       sync.Mutex
	stream   *pubStream    // the open stream; nil between streams
	attempts int           // streams tried to open, counting the first
	openErr  error         // why the last attempt to open one failed
	changed  chan struct{} // closed and replaced whenever stream, attempts or end change
	end      error         // why the Publisher ended; nil while it has not
}

// DefaultMaxInFlight is how many messages a Publisher keeps sent and
// unanswered at most: the server's window for one stream.
const DefaultMaxInFlight = 256

// NewPublisher opens a PublishStream and returns a Publisher on it. ctx
// bounds the Publisher's life: when it is done, the Publisher ends as if
// closed, with ctx's error. It fails with an error matching ErrUnavailable
// when the server cannot be reached, and with ErrClosed after the client's
// Close. A credential the server refuses is reported by the first Publish,
// which ends the Publisher with ErrUnauthenticated; grants are checked per
// message, as for Client.Publish. It is safe for concurrent use.
func (c *Client) NewPublisher(ctx context.Context) (*Publisher, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	pctx, stop := context.WithCancel(ctx)
	p := &Publisher{
		c: c, ctx: ctx, pctx: pctx, stop: stop,
		window:   window.New(DefaultMaxInFlight),
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		attempts: 1,
	}
	first, err := p.open()
	if err != nil {
		stop()
		if c.isClosed() {
			return nil, ErrClosed
		}
		return nil, rpcError(ctx, "open publish stream", err, kindCall)
	}
	p.stream = first
	p.current.Store(first)
	if !c.trackPublisher(p) {
		stop()
		<-first.done
		return nil, ErrClosed
	}
	go p.run(first)
	return p, nil
}

// Publish sends data as one message to room on the Publisher's stream and
// returns the message's offset and the room's epoch once the server has
// sequenced it. Its options and errors are those of Client.Publish, with
// these differences: a message sent when the stream was lost fails with an
// error matching ErrUnavailable unless it has an idempotency key, when the
// Publisher sends it again (see Publisher); after the Publisher ended, it
// returns why (ErrClosed after Close). When ctx ends first, Publish returns
// ctx's error, and the message may still be sequenced. It is safe for
// concurrent use.
func (p *Publisher) Publish(ctx context.Context, room string, data []byte, opts ...PublishOption) (offset uint64, epoch string, err error) {
	return p.publish(ctx, newDataRequest(room, data, opts))
}

// PublishText is Publish for a UTF-8 text payload, as Client.PublishText.
func (p *Publisher) PublishText(ctx context.Context, room, text string, opts ...PublishOption) (offset uint64, epoch string, err error) {
	if !utf8.ValidString(text) {
		return 0, "", localError(publishOp(room), codes.InvalidArgument, "text is not valid UTF-8; publish it as data", kindPublish)
	}
	return p.publish(ctx, newRequest(&roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}, opts))
}

// Close ends the Publisher: calls under way and later ones fail with
// ErrClosed (a message sent and not yet answered may or may not be
// sequenced), and the stream is cancelled. Publish calls return once their
// message is answered, so to see every answer, let them return before
// Close. Close waits for the Publisher's goroutines; it is idempotent and
// returns nil.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.end == nil {
		p.end = ErrClosed
		p.current.Store(nil)
		p.signalLocked()
	}
	p.mu.Unlock()
	p.stop()
	<-p.done
	p.c.forgetPublisher(p)
	return nil
}

// PublishCall is a message sent by PublishAsync, waiting for its answer.
// Its methods are safe for concurrent use.
type PublishCall struct {
	p    *Publisher
	req  *roomcastv1.PublishRequest
	w    *waiter // nil when the send failed with err
	err  error
	once sync.Once
	off  uint64
	ep   string
	res  error
}

// PublishAsync is Publish without the wait: it returns once the message is
// queued on the stream for the Publisher's sender (which waits for a
// stream, and for a place among the DefaultMaxInFlight messages a
// Publisher keeps unanswered), and Wait on the returned call gives its
// answer. Messages sent by successive calls from one goroutine are
// sequenced in that order, since they travel on the same stream in that
// order, while their answers are awaited together: this is
// how to publish an ordered sequence at the stream's pace. data is sent as
// it is, not copied: it must not change until Wait has returned. Only a lost
// stream can change that order: a message sent again with its key after a
// reconnect (see Publisher) may then come after later ones. It is safe for
// concurrent use.
func (p *Publisher) PublishAsync(ctx context.Context, room string, data []byte, opts ...PublishOption) *PublishCall {
	// The call, its request and the request's payload in one allocation.
	r := &struct {
		call PublishCall
		dataRequest
	}{}
	r.call.p, r.call.req = p, r.dataRequest.init(room, data, opts)
	r.call.w, r.call.err = p.send(ctx, r.call.req)
	return &r.call
}

// PublishTextAsync is PublishAsync for a UTF-8 text payload, as
// PublishText.
func (p *Publisher) PublishTextAsync(ctx context.Context, room, text string, opts ...PublishOption) *PublishCall {
	req := newRequest(&roomcastv1.PublishRequest{Room: room, Payload: &roomcastv1.PublishRequest_Text{Text: text}}, opts)
	if !utf8.ValidString(text) {
		return &PublishCall{p: p, req: req, err: localError(publishOp(room), codes.InvalidArgument, "text is not valid UTF-8; publish it as data", kindPublish)}
	}
	return p.start(ctx, req)
}

// Wait waits for the call's answer and returns what Publish would have:
// the offset and epoch, or the error. It sends the message again when
// Publish would. Every call of Wait returns the result of the first; if
// ctx ends first, that is ctx's error, and the message may still be
// sequenced.
func (c *PublishCall) Wait(ctx context.Context) (offset uint64, epoch string, err error) {
	c.once.Do(func() { c.off, c.ep, c.res = c.p.complete(ctx, c.req, c.w, c.err) })
	return c.off, c.ep, c.res
}

// publish sends req, again when it has a key and the stream was lost, and
// returns its answer.
func (p *Publisher) publish(ctx context.Context, req *roomcastv1.PublishRequest) (uint64, string, error) {
	w, err := p.send(ctx, req)
	return p.complete(ctx, req, w, err)
}

// start sends req once, on the open stream or the next one, as a call.
func (p *Publisher) start(ctx context.Context, req *roomcastv1.PublishRequest) *PublishCall {
	c := &PublishCall{p: p, req: req}
	c.w, c.err = p.send(ctx, req)
	return c
}

// publishOp names a publish to room in its errors. It is formatted only
// for an error: quoting the room on every publish is two allocations.
func publishOp(room string) string { return "publish to " + strconv.Quote(room) }

// send sends req once, on the open stream or the next one, and returns its
// waiter, or why it was not sent.
func (p *Publisher) send(ctx context.Context, req *roomcastv1.PublishRequest) (*waiter, error) {
	if f := invalidUTF8(req); f != "" {
		return nil, localError(publishOp(req.GetRoom()), codes.InvalidArgument, f+" is not valid UTF-8", kindPublish)
	}
	st, err := p.await(ctx)
	if err != nil {
		return nil, err
	}
	switch err := p.window.Acquire(ctx, 1, st.done); {
	case errors.Is(err, window.ErrStopped):
		return nil, &lostError{cause: st.err}
	case err != nil:
		return nil, err
	}
	return st.send(req)
}

// complete waits for the answer to req, sent as w, or for the failure
// err to send it; and sends it again while it has a key, the stream was
// lost, and attempts remain.
func (p *Publisher) complete(ctx context.Context, req *roomcastv1.PublishRequest, w *waiter, err error) (uint64, string, error) {
	limit := 1
	if req.GetIdempotencyKey() != "" {
		limit = p.c.cfg.publishAttempts
	}
	for attempt := 1; ; attempt++ {
		if err == nil {
			select {
			case <-w.done: // answered already: PublishAsync's calls often are
			default:
				select {
				case <-w.done:
				case <-ctx.Done():
					err = ctx.Err() // the answer still frees its place in the window
				}
			}
			if err == nil && w.lost != nil {
				err = w.lost
			}
		}
		if err == nil {
			a := w.answer
			w.release() // answered: nothing refers to it any more
			if a.err != nil {
				return 0, "", answerError(publishOp(req.GetRoom()), a.err)
			}
			return a.offset, a.epoch, nil
		}
		op := publishOp(req.GetRoom())
		var lost *lostError
		if !errors.As(err, &lost) {
			return 0, "", endError(ctx, op, err)
		}
		p.mu.Lock()
		end := p.end
		p.mu.Unlock()
		if end == nil && p.pctx.Err() != nil { // ending: run has yet to say so
			end = p.endErr(nil, false)
		}
		switch {
		case end != nil:
			return 0, "", endError(ctx, op, end)
		case permanent(lost.cause):
			return 0, "", &opError{op: op, cause: lost.cause, also: sentinels(lost.cause, kindCall)}
		case attempt >= limit:
			return 0, "", &opError{op: op, cause: lost.status().Err(), also: []error{ErrUnavailable}}
		}
		w, err = p.send(ctx, req)
	}
}

// await returns the open stream, waiting for one if there is none: a
// *lostError if an attempt to open one fails meanwhile, the Publisher's end
// if it ends, or ctx's error.
func (p *Publisher) await(ctx context.Context) (*pubStream, error) {
	if st := p.current.Load(); st != nil && !st.over() {
		return st, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.attempts
	for {
		switch {
		case p.end != nil:
			return nil, p.end
		case p.stream != nil && !p.stream.over():
			return p.stream, nil
		case p.stream == nil && p.attempts > first:
			return nil, &lostError{cause: p.openErr}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		p.mu.Lock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// run owns the Publisher's streams, starting with st: it waits for the
// current one to end, then opens another with backoff, until the Publisher
// ends. It closes p.done last.
func (p *Publisher) run(st *pubStream) {
	defer close(p.done)
	failures := 0
	for {
		<-st.done
		worked := st.answered.Load()
		if worked {
			failures = 0
		}
		if !p.settle(p.endErr(st.err, worked), nil) {
			return
		}
		for {
			failures++
			if !pause(p.pctx, p.c.cfg.backoff.delay(failures)) {
				p.settle(p.endErr(nil, false), nil)
				return
			}
			next, err := p.open()
			if err != nil {
				if !p.settle(p.endErr(err, false), err) {
					return
				}
				continue
			}
			p.mu.Lock()
			p.attempts++
			ended := p.end != nil
			if !ended {
				p.stream = next
				p.current.Store(next)
			}
			p.signalLocked()
			p.mu.Unlock()
			if ended {
				next.cancel()
				<-next.done
				return
			}
			st = next
			break
		}
	}
}

// settle records that there is no stream: the last one ended or, with
// openErr, an attempt to open one failed. end, if not nil, ends the
// Publisher. It reports whether the Publisher goes on.
func (p *Publisher) settle(end, openErr error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stream = nil
	p.current.Store(nil)
	if openErr != nil {
		p.attempts++
		p.openErr = openErr
	}
	if p.end == nil {
		p.end = end
	}
	p.signalLocked()
	return p.end == nil
}

// endErr returns why the Publisher must end after a stream ended with err
// (nil for none), or nil if it should open another. worked tells whether
// the stream was answered at least once.
func (p *Publisher) endErr(err error, worked bool) error {
	switch {
	case p.ctx.Err() != nil:
		return contextError(p.ctx, "publisher ended")
	case p.pctx.Err() != nil:
		return ErrClosed
	case err == nil:
		return nil
	case status.Code(err) == codes.Unauthenticated && worked && p.c.cfg.tokens != nil:
		return nil // the credential expired: the next stream carries a fresh one
	case permanent(err):
		return &opError{op: "publisher ended", cause: err, also: sentinels(err, kindCall)}
	}
	return nil
}

// signalLocked wakes the calls waiting for a change. Caller holds p.mu.
func (p *Publisher) signalLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// open opens a stream and starts its sender and receiver.
func (p *Publisher) open() (*pubStream, error) {
	ctx, cancel := context.WithCancel(p.pctx)
	stream, err := p.c.rpc.PublishStream(ctx, grpc.ForceCodecV2(pubCodec{}))
	if err != nil {
		cancel()
		return nil, err
	}
	st := &pubStream{
		stream: stream, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		wake: make(chan struct{}, 1), senderDone: make(chan struct{}), window: p.window,
		maxItems: 1, maxBytes: maxBatchBytes,
	}
	go st.sender()
	go st.receive()
	return st, nil
}

// pause waits d, and reports false if ctx ends first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newDataRequest is the request to publish data to room with opts: the
// request and its payload in one allocation.
func newDataRequest(room string, data []byte, opts []PublishOption) *roomcastv1.PublishRequest {
	return new(dataRequest).init(room, data, opts)
}

// dataRequest is a request to publish data with its payload, to be
// allocated as one.
type dataRequest struct {
	req  roomcastv1.PublishRequest
	data roomcastv1.PublishRequest_Data
}

// init makes r the request to publish data to room with opts.
func (r *dataRequest) init(room string, data []byte, opts []PublishOption) *roomcastv1.PublishRequest {
	r.req.Room, r.data.Data = room, data
	r.req.Payload = &r.data
	return newRequest(&r.req, opts)
}

// invalidUTF8 names the first of req's strings that is not valid UTF-8, or
// returns "". The encoding refuses such a request, and grpc-go then ends
// the stream, failing every message sent with it: it is refused before it
// is queued, alone.
func invalidUTF8(req *roomcastv1.PublishRequest) string {
	switch {
	case !utf8.ValidString(req.GetRoom()):
		return "the room name"
	case !utf8.ValidString(req.GetText()):
		return "the text"
	case !utf8.ValidString(req.GetContentType()):
		return "the content type"
	case !utf8.ValidString(req.GetSessionId()):
		return "the session id"
	case !utf8.ValidString(req.GetExcludeSession()):
		return "the excluded session"
	case !utf8.ValidString(req.GetIdempotencyKey()):
		return "the idempotency key"
	}
	for k, v := range req.GetHeaders() {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return "a header"
		}
	}
	return ""
}

// newRequest is req, which has none of the fields options set, completed
// with opts.
func newRequest(req *roomcastv1.PublishRequest, opts []PublishOption) *roomcastv1.PublishRequest {
	if len(opts) == 0 {
		return req // the options' config escapes: an allocation for nothing
	}
	var c publishConfig
	for _, o := range opts {
		o(&c)
	}
	c.apply(req)
	return req
}

// endError is the error of a publish that ended for err, which is not a
// *lostError: the Publisher's end or ctx's.
func endError(ctx context.Context, op string, err error) error {
	var oe *opError
	switch {
	case errors.Is(err, ErrClosed):
		return ErrClosed
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return contextError(ctx, op)
	case errors.As(err, &oe):
		return &opError{op: op, cause: oe.cause, also: oe.also}
	}
	return rpcError(ctx, op, err, kindPublish)
}

// pubStreamClient is what a Publisher needs of its stream.
type pubStreamClient = grpc.BidiStreamingClient[roomcastv1.PublishStreamRequest, roomcastv1.PublishStreamResponse]
