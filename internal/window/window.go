// Package window counts the places of a flow-control window: a sender
// takes a place per message before it sends it, and gives it back when the
// message is answered. It is the publish windows' count, on the Go
// client's Publisher and on the server's PublishStream.
package window

import (
	"context"
	"errors"
	"sync"
)

// Places is a window of places. A channel of tokens would cost a channel
// operation per place on each side; Places costs a lock per call, frees
// any number of places at once, and wakes only calls that found none free.
// Its methods are safe for concurrent use.
type Places struct {
	mu      sync.Mutex
	free    int
	waiting int           // Acquire calls waiting for a place
	freed   chan struct{} // closed, and replaced, when places are freed while calls wait
}

// New returns a window of n places, all free.
func New(n int) *Places {
	return &Places{free: n, freed: make(chan struct{})}
}

// ErrStopped is Acquire's error when its stop channel closed first.
var ErrStopped = errors.New("window: stopped waiting for a place")

// Acquire takes k places, at most the window's size, once that many are
// free together (several calls each holding part of what they need could
// wait for one another for ever), waiting until ctx ends (its error) or
// stop is closed (ErrStopped). A nil stop is never closed.
func (w *Places) Acquire(ctx context.Context, k int, stop <-chan struct{}) error {
	w.mu.Lock()
	for w.free < k {
		freed := w.freed
		w.waiting++
		w.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-stop:
			err = ErrStopped
		}
		w.mu.Lock()
		w.waiting--
		if err != nil {
			w.mu.Unlock()
			return err
		}
	}
	w.free -= k
	w.mu.Unlock()
	return nil
}

// Release gives back k places that Acquire took.
func (w *Places) Release(k int) {
	if k == 0 {
		return
	}
	w.mu.Lock()
	w.free += k
	if w.waiting > 0 {
		close(w.freed)
		w.freed = make(chan struct{})
	}
	w.mu.Unlock()
}
