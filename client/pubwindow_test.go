package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestPubWindow checks the window's places: at most its size are held at
// once however acquire and release interleave, a release wakes the calls
// that wait, and a waiting call gives up when its context ends or stop is
// closed.
func TestPubWindow(t *testing.T) {
	const places, callers, each = 4, 16, 500
	w := newPubWindow(places)
	var held, most atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if err := w.acquire(context.Background(), nil); err != nil {
					t.Error(err)
					return
				}
				n := held.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				held.Add(-1)
				w.release(1)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > places || m < 1 {
		t.Errorf("%d places held at once, window of %d", m, places)
	}

	for range places {
		if err := w.acquire(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.acquire(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire on a full window until its context ended: %v", err)
	}
	stop := make(chan struct{})
	close(stop)
	if err := w.acquire(context.Background(), stop); !errors.Is(err, errWindowStopped) {
		t.Errorf("acquire on a full window, stopped: %v", err)
	}
	got := make(chan error, 2)
	for range 2 {
		go func() { got <- w.acquire(context.Background(), nil) }()
	}
	w.release(2) // both waiters, however many of them wait yet
	for range 2 {
		if err := <-got; err != nil {
			t.Error(err)
		}
	}
	if w.free != 0 || w.waiting != 0 {
		t.Errorf("free %d, waiting %d after every place was taken again", w.free, w.waiting)
	}
}
