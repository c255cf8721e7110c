package client

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
	"github.com/roomcast/roomcast/internal/window"
	"github.com/roomcast/roomcast/internal/wire"
)

// pubStream is one PublishStream of a Publisher. The server answers in the
// order of the requests, so the messages sent and not yet answered wait in
// that order, and each answer belongs to the first of them.
//
// Calls queue their messages; the stream's sender sends everything queued,
// in order, as one request whose batch carries all but the first (when the
// server takes batches: see batchLimits), and goes back to waiting. A lone
// message goes out as soon as the sender wakes; messages queued while it is
// sending go out together next.
type pubStream struct {
	stream   pubStreamClient
	ctx      context.Context    // the stream's: done when it ends
	cancel   context.CancelFunc // ends the stream
	done     chan struct{}      // closed when the stream ended, err set, and the sender has returned
	err      error              // why it ended; set under mu before done is closed
	answered atomic.Bool        // an answer came: the stream worked

	wake       chan struct{}  // a message was queued; capacity 1
	senderDone chan struct{}  // closed when the sender has returned
	window     *window.Places // the Publisher's: each message sent holds a place until answered or failed

	// The sender's own: the server's batch limits, learnt from its headers
	// after the first request.
	sentAny    bool
	limitsRead bool
	maxItems   int
	maxBytes   int

	mu      sync.Mutex
	next    uint64    // the last request id
	waiting []*waiter // sent or queued, unanswered, in the order queued
	queue   []queued  // not yet sent, in the order queued
	ended   bool

	endedFlag atomic.Bool // ended, for reading without mu

	// The sender's: the ids of the batch it takes, formatted one after
	// another, and where each ends, after a 0.
	ids    []byte
	idEnds []int

	// The sender's, reused for each request: Send encodes a request before
	// it returns, and keeps nothing of it.
	req   roomcastv1.PublishStreamRequest
	items []roomcastv1.PublishStreamItem
	batch []*roomcastv1.PublishStreamItem
}

// queued is a message waiting for the sender.
type queued struct {
	seq uint64 // its request id
	req *roomcastv1.PublishRequest
}

// maxBatchBytes bounds the requests a Publisher sends, below the server's
// limit: larger ones would add copying, not fewer messages.
const maxBatchBytes = 64 << 10

// over reports whether the stream has ended.
//
// It reads ended rather than done: fail wakes the stream's waiters before it
// closes done, and a waiter that retried on a stream it still saw as open
// would be refused by send at once, again and again, each refusal costing
// the publish an attempt, until done closed.
func (st *pubStream) over() bool {
	return st.endedFlag.Load()
}

// waiter is one message sent on a stream, waiting for its answer. Waiters
// are reused (see release): done carries one token, sent once answer or
// lost is set, to the one goroutine that waits for it.
type waiter struct {
	seq    uint64        // its request id
	done   chan struct{} // capacity 1
	answer pubAnswer
	lost   *lostError
}

// waiters holds answered waiters for reuse: a waiter and its channel are
// two allocations per message otherwise.
var waiters = sync.Pool{New: func() any { return &waiter{done: make(chan struct{}, 1)} }}

// newWaiter returns a waiter for request seq.
func newWaiter(seq uint64) *waiter {
	w := waiters.Get().(*waiter)
	w.seq = seq
	return w
}

// release gives w back for reuse. Only its waiting goroutine may call it,
// once it took w's token and read its answer: the stream no longer refers
// to w by then.
func (w *waiter) release() {
	*w = waiter{done: w.done}
	waiters.Put(w)
}

// signal hands w's result to its waiting goroutine. Its place in the
// window is freed first, by its stream.
func (w *waiter) signal() {
	w.done <- struct{}{}
}

// pubAnswer is the server's answer to one message.
type pubAnswer struct {
	offset uint64
	epoch  string
	err    *roomcastv1.Error // the message was refused
}

// send queues req, which holds a place in the window, for the sender and
// returns its waiter, or a *lostError if the stream has ended. The place is
// freed once: when the answer comes or the stream ends.
func (st *pubStream) send(req *roomcastv1.PublishRequest) (*waiter, error) {
	st.mu.Lock()
	if st.ended {
		err := st.err
		st.mu.Unlock()
		st.window.Release(1)
		return nil, &lostError{cause: err}
	}
	st.next++
	w := newWaiter(st.next)
	st.waiting = append(st.waiting, w)
	// Only the message that finds the queue empty wakes the sender: the
	// sender takes until it finds the queue empty, so it has yet to take
	// those that find it queued behind another.
	first := len(st.queue) == 0
	st.queue = append(st.queue, queued{seq: st.next, req: req})
	st.mu.Unlock()
	if first {
		select {
		case st.wake <- struct{}{}:
		default: // the sender is awake already and will find it
		}
	}
	return w, nil
}

// sender sends what is queued until the stream ends. A failed Send means
// the stream is over: the receiver learns why from Recv and fails the
// waiters.
func (st *pubStream) sender() {
	defer close(st.senderDone)
	for {
		select {
		case <-st.wake:
		case <-st.ctx.Done():
			return
		}
		// Let the goroutines that are ready to run queue their messages
		// first: the answers to a batch wake many callers at once, and each
		// would otherwise wake the sender for its message alone. With none
		// ready, this returns at once: a lone message does not wait.
		runtime.Gosched()
		for {
			req := st.take()
			if req == nil {
				break
			}
			_ = st.stream.Send(req)
			st.sentAny = true
			st.forget()
		}
	}
}

// take returns the next request to send, holding as much of the queue as
// the batch limits allow, or nil if nothing is queued.
func (st *pubStream) take() *roomcastv1.PublishStreamRequest {
	st.mu.Lock()
	n := len(st.queue)
	st.mu.Unlock()
	if n == 0 {
		return nil
	}
	if n > 1 && st.sentAny && !st.limitsRead {
		st.readLimits()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	q := st.queue
	if len(q) == 0 { // the stream ended while readLimits waited
		return nil
	}
	// The ids of the batch are formatted into one string, which they share.
	ids, ends := strconv.AppendUint(st.ids[:0], q[0].seq, 10), append(st.idEnds[:0], 0)
	ends = append(ends, len(ids))
	n, size := 1, q[0].req.SizeVT()+len(ids)+itemOverhead
	for n < len(q) && n < st.maxItems {
		before := len(ids)
		ids = strconv.AppendUint(ids, q[n].seq, 10)
		size += q[n].req.SizeVT() + len(ids) - before + itemOverhead
		if size > st.maxBytes {
			ids = ids[:before]
			break
		}
		ends = append(ends, len(ids))
		n++
	}
	st.ids, st.idEnds = ids, ends
	all := string(ids)
	req := &st.req
	req.Id, req.Publish = all[:ends[1]], q[0].req
	if n > 1 {
		if cap(st.items) < n-1 { // made once, for the largest batch the server takes
			st.items = make([]roomcastv1.PublishStreamItem, st.maxItems-1)
			st.batch = make([]*roomcastv1.PublishStreamItem, st.maxItems-1)
		}
		items, batch := st.items[:n-1], st.batch[:n-1]
		for i := range batch {
			batch[i] = &items[i]
			items[i].Id, items[i].Publish = all[ends[i+1]:ends[i+2]], q[i+1].req
		}
		req.Batch = batch
	}
	rest := copy(q, q[n:])
	clear(q[rest:])
	st.queue = q[:rest]
	return req
}

// forget drops the sent request's references to its messages, which are
// the callers' (their payloads most of all), so that they are not kept
// until the next request.
func (st *pubStream) forget() {
	clear(st.items[:len(st.req.Batch)])
	st.req = roomcastv1.PublishStreamRequest{}
}

// itemOverhead bounds the bytes a batch item adds to its publish and id:
// field tags and lengths.
const itemOverhead = 16

// readLimits learns whether the server takes batches, and their limits,
// from its response headers, which come at the latest with the answer to
// the first request: a server without batches sends none, and gets one
// message per request. It is called after the first request was sent,
// only when a batch could be sent.
func (st *pubStream) readLimits() {
	st.limitsRead = true
	md, err := st.stream.Header()
	if err != nil {
		return
	}
	items := headerInt(md, wire.PublishBatchItemsHeader)
	bytes := headerInt(md, wire.PublishBatchBytesHeader)
	if items > 1 && bytes > 0 {
		// No batch holds more than the window, whatever a server or a proxy
		// announces: the sender's item arrays are made at this size.
		st.maxItems, st.maxBytes = min(items, DefaultMaxInFlight), min(bytes, maxBatchBytes)
	}
}

// headerInt is the positive integer of header key in md, or 0.
func headerInt(md metadata.MD, key string) int {
	v := md.Get(key)
	if len(v) != 1 {
		return 0
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// receive hands each answer to the first waiter until the stream ends, then
// fails the rest.
func (st *pubStream) receive() {
	var (
		resp  pubAnswers // reused: decoded into by the stream's codec
		taken []*waiter  // reused: the waiters of the response at hand
	)
	for {
		err := st.stream.RecvMsg(&resp)
		if err == io.EOF { // the server ends with OK only after our CloseSend, which we never send
			err = status.Error(codes.Unavailable, "the server ended the publish stream")
		}
		if err != nil {
			st.fail(err)
			return
		}
		if taken, err = st.deliver(resp.items, taken); err != nil {
			st.fail(err)
			return
		}
	}
}

// deliver hands a response's answers, in order, to the first waiters,
// which must have their ids, taking them off waiting together. taken is
// reused for them, and returned cleared.
func (st *pubStream) deliver(items []pubItem, taken []*waiter) ([]*waiter, error) {
	st.mu.Lock()
	n := min(len(items), len(st.waiting))
	taken = append(taken[:0], st.waiting[:n]...)
	clear(st.waiting[:n])
	st.waiting = st.waiting[n:]
	st.mu.Unlock()
	defer clear(taken)
	st.window.Release(n) // each taken is answered or failed below
	for i := range items {
		it := &items[i]
		if i >= len(taken) || !it.answers(taken[i].seq) {
			err := status.Errorf(codes.Internal, "the server answered request %q out of order", it.id())
			for _, w := range taken[i:] { // off waiting already: fail will not see them
				w.fail(err)
			}
			return taken[:0], err
		}
		if i == 0 {
			st.answered.Store(true)
		}
		w := taken[i]
		w.answer = it.answer
		w.signal()
	}
	return taken[:0], nil
}

// fail ends the stream with err and fails every waiter.
func (st *pubStream) fail(err error) {
	st.mu.Lock()
	st.ended, st.err = true, err
	st.endedFlag.Store(true)
	waiting := st.waiting
	st.waiting, st.queue = nil, nil
	st.mu.Unlock()
	st.cancel()
	<-st.senderDone
	st.window.Release(len(waiting))
	for _, w := range waiting {
		w.fail(err)
	}
	close(st.done)
}

func (w *waiter) fail(err error) {
	w.lost = &lostError{cause: err, sent: true}
	w.signal()
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
