package client

import (
	"context"
	"errors"
	"sync"
)

// pubWindow holds the places of a Publisher's messages sent and not
// answered: a call takes one before it queues its message, and the
// stream's receiver frees a response's places at once. A channel of
// tokens would cost two channel operations per message, one on each side;
// this costs a lock on each, and a wake-up only of calls that found no
// place. Its methods are safe for concurrent use.
type pubWindow struct {
	mu      sync.Mutex
	free    int
	waiting int           // acquire calls waiting for a place
	freed   chan struct{} // closed, and replaced, when places are freed while calls wait
}

func newPubWindow(places int) *pubWindow {
	return &pubWindow{free: places, freed: make(chan struct{})}
}

// errWindowStopped is acquire's error when stop closed first.
var errWindowStopped = errors.New("stopped waiting for a place in the window")

// acquire takes a place, waiting for one until ctx ends (its error) or
// stop is closed (errWindowStopped).
func (w *pubWindow) acquire(ctx context.Context, stop <-chan struct{}) error {
	w.mu.Lock()
	for w.free == 0 {
		freed := w.freed
		w.waiting++
		w.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-stop:
			err = errWindowStopped
		}
		w.mu.Lock()
		w.waiting--
		if err != nil {
			w.mu.Unlock()
			return err
		}
	}
	w.free--
	w.mu.Unlock()
	return nil
}

// release frees n places, taken by acquire.
func (w *pubWindow) release(n int) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.free += n
	if w.waiting > 0 {
		close(w.freed)
		w.freed = make(chan struct{})
	}
	w.mu.Unlock()
}
