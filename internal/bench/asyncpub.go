package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/client"
)

// asyncPublisher publishes on a client.Publisher as a program publishing at
// a stream's pace does: PublishAsync from the publisher's one lane, which
// goes on to the next message at once, and the answers waited for in order
// by a goroutine of its own, which reports a refused or lost message as a
// failure. Messages of one publisher are sequenced in the order the lane
// queued them. publish is called by one goroutine at a time; close by the
// worker once no publish is under way.
type asyncPublisher struct {
	w      *worker
	index  int // the publisher's, for failures
	pub    *client.Publisher
	ctx    context.Context    // the calls': cancelled by close, or when the answers stall
	cancel context.CancelFunc // cancels ctx
	calls  chan asyncCall     // queued, in order, for wait
	free   chan []byte        // payload buffers no call holds
	done   chan struct{}      // closed when wait and watch have returned

	queued, answered atomic.Uint64
}

// asyncCall is a message queued and not yet waited for.
type asyncCall struct {
	call *client.PublishCall
	room string
	buf  []byte // its payload, which must not change until the answer
}

// newAsyncPublisher starts publisher index's waiting goroutines on pub.
func newAsyncPublisher(w *worker, index int, pub *client.Publisher) *asyncPublisher {
	n := client.DefaultMaxInFlight
	ctx, cancel := context.WithCancel(context.Background())
	a := &asyncPublisher{
		w: w, index: index, pub: pub, ctx: ctx, cancel: cancel,
		calls: make(chan asyncCall, n),
		free:  make(chan []byte, n+2), // the calls queued, the one waited for, the one being queued
		done:  make(chan struct{}),
	}
	for range cap(a.free) {
		a.free <- make([]byte, w.spec.Payload)
	}
	watched := make(chan struct{})
	go func() { a.watch(); close(watched) }()
	go func() { a.wait(); a.cancel(); <-watched; close(a.done) }()
	return a
}

// publish queues payload, copied, for r: the lane reuses payload at once.
func (a *asyncPublisher) publish(_ context.Context, r *room, payload []byte) error {
	var buf []byte
	select {
	case buf = <-a.free:
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
	copy(buf, payload)
	a.queued.Add(1)
	a.calls <- asyncCall{call: a.pub.PublishAsync(a.ctx, r.name, buf), room: r.name, buf: buf}
	return nil
}

// wait waits for each call's answer, in order, until close.
func (a *asyncPublisher) wait() {
	for c := range a.calls {
		if _, _, err := c.call.Wait(a.ctx); err != nil {
			a.w.fail("publisher %d (%s): %v", a.index, c.room, err)
		}
		a.answered.Add(1)
		a.free <- c.buf
	}
}

// watch cancels the calls when publishTimeout passes with a message queued
// and no answer, as the unary publishers' calls time out: a server that
// stopped answering fails the trial rather than holding it.
func (a *asyncPublisher) watch() {
	t := time.NewTicker(publishTimeout / 4)
	defer t.Stop()
	last, since := a.answered.Load(), time.Now()
	for {
		select {
		case <-a.ctx.Done():
			return
		case now := <-t.C:
			n := a.answered.Load()
			if n != last || a.queued.Load() == n {
				last, since = n, now
				continue
			}
			if now.Sub(since) >= publishTimeout {
				a.cancel()
				return
			}
		}
	}
}

// close waits for the answers to the calls queued, then stops the
// goroutines. It is called once, when no publish is under way.
func (a *asyncPublisher) close() {
	close(a.calls)
	<-a.done
}
