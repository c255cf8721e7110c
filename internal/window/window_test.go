package window

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPlaces checks the window's count: at most its size is held at once
// however Acquire and Release interleave, with calls taking one place or a
// batch (without waiting for one another for ever), a Release wakes the
// calls that wait, and a waiting call gives up when its context ends or
// stop is closed, holding nothing.
func TestPlaces(t *testing.T) {
	const places, callers, each = 4, 16, 500
	w := New(places)
	var held, most atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		k := 1 + i%places // some take one place, some a batch
		wg.Go(func() {
			for range each {
				if err := w.Acquire(context.Background(), k, nil); err != nil {
					t.Error(err)
					return
				}
				n := held.Add(int64(k))
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				held.Add(-int64(k))
				w.Release(k)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > places || m < 1 {
		t.Errorf("%d places held at once, window of %d", m, places)
	}
	if w.free != places {
		t.Fatalf("%d places free after every one was given back, want %d", w.free, places)
	}

	if err := w.Acquire(context.Background(), places-1, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Acquire(ctx, 2, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire past a full window until its context ended: %v", err)
	}
	stop := make(chan struct{})
	close(stop)
	if err := w.Acquire(context.Background(), 2, stop); !errors.Is(err, ErrStopped) {
		t.Errorf("Acquire past a full window, stopped: %v", err)
	}
	if w.free != 1 {
		t.Fatalf("%d places free after calls that gave up, want 1", w.free)
	}
	got := make(chan error, 2)
	for range 2 {
		go func() { got <- w.Acquire(context.Background(), 1, nil) }()
	}
	w.Release(1) // with the free one, both, however many of them wait yet
	for range 2 {
		if err := <-got; err != nil {
			t.Error(err)
		}
	}
	if w.free != 0 || len(w.line) != 0 {
		t.Errorf("free %d, waiting %d after every place was taken again", w.free, len(w.line))
	}
}

// Calls are served in the order they came: a batch waiting for its places
// is not passed over by single places taken after it, however often places
// free one at a time.
func TestPlacesServeInOrder(t *testing.T) {
	w := New(4)
	if err := w.Acquire(context.Background(), 4, nil); err != nil {
		t.Fatal(err)
	}
	batch := make(chan error, 1)
	go func() { batch <- w.Acquire(context.Background(), 3, nil) }()
	waitInLine(t, w, 1)
	single := make(chan error, 1)
	go func() { single <- w.Acquire(context.Background(), 1, nil) }()
	waitInLine(t, w, 2)
	w.Release(1)
	w.Release(1)
	select {
	case <-single:
		t.Fatal("a single place taken after a waiting batch was served before it")
	case <-batch:
		t.Fatal("a batch of 3 served with 2 places free")
	default:
	}
	w.Release(1)
	if err := <-batch; err != nil {
		t.Fatal(err)
	}
	w.Release(1)
	if err := <-single; err != nil {
		t.Fatal(err)
	}

	// A call that gives up lets those behind it be served.
	w = New(2)
	if err := w.Acquire(context.Background(), 2, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	big := make(chan error, 1)
	go func() { big <- w.Acquire(ctx, 2, nil) }()
	waitInLine(t, w, 1)
	go func() { single <- w.Acquire(context.Background(), 1, nil) }()
	waitInLine(t, w, 2)
	w.Release(1)
	cancel()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled batch: %v", err)
	}
	if err := <-single; err != nil {
		t.Fatal(err)
	}
	if w.free != 0 || len(w.line) != 0 {
		t.Errorf("free %d, waiting %d", w.free, len(w.line))
	}
}

// waitInLine polls until n calls wait in w's line.
func waitInLine(t *testing.T, w *Places, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got := len(w.line)
		w.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls wait, want %d", got, n)
		}
		runtime.Gosched()
	}
}
