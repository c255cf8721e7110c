package client

import (
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// pubStream is one PublishStream of a Publisher. The server answers in the
// order of the requests, so the messages sent and not yet answered wait in
// that order, and each answer belongs to the first of them.
type pubStream struct {
	stream   pubStreamClient
	cancel   context.CancelFunc // ends the stream
	done     chan struct{}      // closed when the stream ended, err set
	err      error              // why it ended; set under mu before done is closed
	answered atomic.Bool        // an answer came: the stream worked

	sendMu sync.Mutex // one Send at a time, as gRPC requires; taken before mu
	next   uint64     // the last request id; guarded by sendMu

	mu      sync.Mutex
	waiting []*waiter // sent, unanswered, in the order sent
	ended   bool
}

// over reports whether the stream has ended.
//
// It reads ended rather than done: fail wakes the stream's waiters before it
// closes done, and a waiter that retried on a stream it still saw as open
// would be refused by send at once, again and again, each refusal costing
// the publish an attempt, until done closed.
func (st *pubStream) over() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ended
}

// waiter is one message sent on a stream, waiting for its answer.
type waiter struct {
	id      string
	done    chan struct{} // closed once answer or lost is set
	answer  pubAnswer
	lost    *lostError
	release func() // frees the message's place in the Publisher's window
}

// pubAnswer is the server's answer to one message.
type pubAnswer struct {
	offset uint64
	epoch  string
	err    *roomcastv1.Error // the message was refused
}

// send sends req and returns its waiter, or a *lostError if the stream has
// ended; release is called once, when the answer comes or the stream ends.
func (st *pubStream) send(req *roomcastv1.PublishRequest, release func()) (*waiter, error) {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	st.next++
	w := &waiter{id: strconv.FormatUint(st.next, 10), done: make(chan struct{}), release: release}
	st.mu.Lock()
	if st.ended {
		err := st.err
		st.mu.Unlock()
		release()
		return nil, &lostError{cause: err}
	}
	st.waiting = append(st.waiting, w)
	st.mu.Unlock()
	// A failed Send means the stream is over: the receiver learns why from
	// Recv and fails w with the others.
	_ = st.stream.Send(&roomcastv1.PublishStreamRequest{Id: w.id, Publish: req})
	return w, nil
}

// receive hands each answer to the first waiter until the stream ends, then
// fails the rest.
func (st *pubStream) receive() {
	for {
		resp, err := st.stream.Recv()
		if err == io.EOF { // the server ends with OK only after our CloseSend, which we never send
			err = status.Error(codes.Unavailable, "the server ended the publish stream")
		}
		if err != nil {
			st.fail(err)
			return
		}
		st.mu.Lock()
		var w *waiter
		if len(st.waiting) > 0 {
			w = st.waiting[0]
			st.waiting[0] = nil
			st.waiting = st.waiting[1:]
		}
		st.mu.Unlock()
		if w == nil || resp.GetId() != w.id {
			err := status.Errorf(codes.Internal, "the server answered request %q out of order", resp.GetId())
			if w != nil {
				w.fail(err)
			}
			st.fail(err)
			return
		}
		st.answered.Store(true)
		if e := resp.GetError(); e != nil {
			w.answer.err = e
		} else {
			w.answer.offset, w.answer.epoch = resp.GetOk().GetOffset(), resp.GetOk().GetEpoch()
		}
		w.release()
		close(w.done)
	}
}

// fail ends the stream with err and fails every waiter.
func (st *pubStream) fail(err error) {
	st.mu.Lock()
	st.ended, st.err = true, err
	waiting := st.waiting
	st.waiting = nil
	st.mu.Unlock()
	st.cancel()
	for _, w := range waiting {
		w.fail(err)
	}
	close(st.done)
}

func (w *waiter) fail(err error) {
	w.lost = &lostError{cause: err, sent: true}
	w.release()
	close(w.done)
}

// lostError says a message got no answer because its stream was lost, or
// could not be opened.
type lostError struct {
	cause error // the stream's end
	sent  bool
}

func (e *lostError) Error() string { return e.status().Message() }

// status is what a caller sees when the message is not sent again.
func (e *lostError) status() *status.Status {
	if e.sent {
		return status.Newf(codes.Unavailable, "the publish stream ended before the answer came (%v): the message may or may not have been sequenced", e.cause)
	}
	return status.Newf(codes.Unavailable, "the message was not sent: the publish stream ended (%v)", e.cause)
}

// answerError turns a refused message's answer into an error with the
// status Publish would have returned, RetryInfo included.
func answerError(op string, e *roomcastv1.Error) error {
	st := status.New(codes.Code(e.GetCode()), e.GetMessage())
	if d := e.GetRetryAfter(); d != nil {
		if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: d}); err == nil {
			st = detailed
		}
	}
	err := st.Err()
	return &opError{op: op, cause: err, also: sentinels(err, kindPublish)}
}
