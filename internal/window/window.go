// Package window counts the places of a flow-control window: a sender
// takes a place per message before it sends it, and gives it back when the
// message is answered. It is the publish windows' count, on the Go
// client's Publisher and on the server's PublishStream.
package window

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Places is a window of places. A channel of tokens would cost a channel
// operation per place on each side; Places costs a lock per call and frees
// any number of places at once. Calls that find too few places free wait
// in line, and are served in the order they came, each woken alone when
// its places are free: a call taking a batch is not passed over for ever by
// calls taking one, and a Release wakes no one who would find too few.
// Its methods are safe for concurrent use.
type Places struct {
	mu   sync.Mutex
	free int
	line []*waiter // Acquire calls waiting, in the order they came
}

// waiter is an Acquire call waiting for its places.
type waiter struct {
	k     int
	ready chan struct{} // closed once its places are taken for it
}

// New returns a window of n places, all free.
func New(n int) *Places {
	return &Places{free: n}
}

// ErrStopped is Acquire's error when its stop channel closed first.
var ErrStopped = errors.New("window: stopped waiting for a place")

// Acquire takes k places, at most the window's size, once that many are
// free together (several calls each holding part of what they need could
// wait for one another for ever) and every call that came before it was
// served, waiting until ctx ends (its error) or stop is closed
// (ErrStopped). A nil stop is never closed.
func (w *Places) Acquire(ctx context.Context, k int, stop <-chan struct{}) error {
	w.mu.Lock()
	if len(w.line) == 0 && w.free >= k {
		w.free -= k
		w.mu.Unlock()
		return nil
	}
	me := &waiter{k: k, ready: make(chan struct{})}
	w.line = append(w.line, me)
	w.mu.Unlock()
	var err error
	select {
	case <-me.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = ErrStopped
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-me.ready: // served meanwhile: give the places back
		w.free += k
	default:
		w.line = slices.DeleteFunc(w.line, func(x *waiter) bool { return x == me })
	}
	w.serve() // those behind it may fit now
	return err
}

// Release gives back k places that Acquire took.
func (w *Places) Release(k int) {
	if k == 0 {
		return
	}
	w.mu.Lock()
	w.free += k
	w.serve()
	w.mu.Unlock()
}

// serve takes places for the calls at the head of the line while they fit,
// and wakes them. Caller holds mu.
func (w *Places) serve() {
	n := 0
	for n < len(w.line) && w.line[n].k <= w.free {
		w.free -= w.line[n].k
		close(w.line[n].ready)
		n++
	}
	if n > 0 {
		rest := copy(w.line, w.line[n:])
		clear(w.line[rest:])
		w.line = w.line[:rest]
	}
}
