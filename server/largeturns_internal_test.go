package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeTurns is a largeTurns on a clock of its own, whose rests pass at
// once and are recorded.
type fakeTurns struct {
	*largeTurns
	clock time.Time
	rests []time.Duration
}

func newFakeTurns(t *testing.T) *fakeTurns {
	t.Helper()
	f := &fakeTurns{largeTurns: newLargeTurns(100), clock: time.Unix(1000, 0)}
	f.now = func() time.Time { return f.clock }
	f.rest = func(ctx context.Context, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.rests = append(f.rests, d)
		f.clock = f.clock.Add(d)
		return nil
	}
	return f
}

// turn takes a turn that lasts d.
func (f *fakeTurns) turn(t *testing.T, d time.Duration) {
	t.Helper()
	done, err := f.take(context.Background())
	if err != nil {
		t.Fatalf("take: %v", err)
	}
	f.clock = f.clock.Add(d)
	done()
}

func TestLargeTurnsTakeNothingBelowTheirMinimum(t *testing.T) {
	var off *largeTurns
	if newLargeTurns(0) != nil || off.takes(1<<30) {
		t.Fatal("turns of 0 bytes are not off")
	}
	lt := newLargeTurns(100)
	if lt.takes(99) || !lt.takes(100) || !lt.takes(1<<20) {
		t.Fatalf("takes(99, 100, 1 MiB) = %v, %v, %v; want false, true, true", lt.takes(99), lt.takes(100), lt.takes(1<<20))
	}
}

func TestLargeTurnsRestAsLongAsTheTurnBefore(t *testing.T) {
	f := newFakeTurns(t)
	f.turn(t, 3*time.Millisecond)           // the first turn waits for nothing
	f.turn(t, 2*time.Millisecond)           // rests 3 ms first
	f.clock = f.clock.Add(time.Millisecond) // half the rest passes before the next asks
	f.turn(t, 50*time.Millisecond)          // rests the other 1 ms
	f.turn(t, 0)                            // rests 10 ms, not 50
	f.clock = f.clock.Add(time.Second)
	f.turn(t, 0) // long after: no rest
	want := []time.Duration{3 * time.Millisecond, time.Millisecond, maxTurnRest}
	if len(f.rests) != len(want) {
		t.Fatalf("rests %v, want %v", f.rests, want)
	}
	for i := range want {
		if f.rests[i] != want[i] {
			t.Fatalf("rests %v, want %v", f.rests, want)
		}
	}
	if got := f.turns.Load(); got != 5 {
		t.Errorf("turns counted %d, want 5", got)
	}
	if got, want := time.Duration(f.waited.Load()), 14*time.Millisecond; got != want {
		t.Errorf("waited %v, want %v (the rests)", got, want)
	}
}

// A call that ends while another holds the turn gives up with its
// context's code, and leaves the turn to the one holding it.
func TestLargeTurnsAreOneAtATime(t *testing.T) {
	f := newFakeTurns(t)
	done, err := f.take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.take(ctx); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("take while a turn is held: %v, want DEADLINE_EXCEEDED", err)
	}
	gone, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := f.take(gone); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call while a turn is held: %v, want CANCELED", err)
	}
	done()
	done2, err := f.take(context.Background())
	if err != nil {
		t.Fatalf("take once the turn ended: %v", err)
	}
	done2()
	if got := f.gaveUp.Load(); got != 2 {
		t.Errorf("gave up %d, want 2", got)
	}
}

// A call that ends in its rest gives the turn back, and the rest still
// holds for the next.
func TestLargeTurnsGiveUpInTheRest(t *testing.T) {
	f := newFakeTurns(t)
	f.turn(t, 4*time.Millisecond)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.take(gone); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call in the rest: %v, want CANCELED", err)
	}
	f.turn(t, 0)
	if len(f.rests) != 1 || f.rests[0] != 4*time.Millisecond {
		t.Fatalf("rests %v, want [4ms]", f.rests)
	}
}

// The real clock and timer: a turn's rest is waited, and a waiting call
// that is cancelled returns at once.
func TestLargeTurnsRestOnTheRealClock(t *testing.T) {
	lt := newLargeTurns(1)
	done, err := lt.take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for time.Since(began) < 5*time.Millisecond { // a turn of at least 5 ms
	}
	done()
	done, err = lt.take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < 10*time.Millisecond {
		t.Errorf("the next turn began %v after the first, want at least 10 ms (5 ms and its rest)", waited)
	}
	began = time.Now()
	for time.Since(began) < 5*time.Millisecond {
	}
	done()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lt.take(ctx); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call: %v, want CANCELED", err)
	}
}
