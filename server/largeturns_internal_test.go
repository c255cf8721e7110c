package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeTurns is a largeTurns on a clock of its own, whose rests pass at
// once and are recorded.
type fakeTurns struct {
	*largeTurns
	stop  chan struct{}
	clock time.Time
	rests []time.Duration
}

func newFakeTurns(t *testing.T) *fakeTurns {
	t.Helper()
	stop := make(chan struct{})
	f := &fakeTurns{largeTurns: newLargeTurns(100, stop), stop: stop, clock: time.Unix(1000, 0)}
	f.now = func() time.Time { return f.clock }
	f.rest = func(ctx context.Context, _ <-chan struct{}, d time.Duration) error {
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
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
	done, err := f.take(context.Background(), "c", 100)
	if err != nil {
		t.Fatalf("take: %v", err)
	}
	f.clock = f.clock.Add(d)
	done()
}

// clientHolds reports whether a request of client has taken its client's
// turn and waits for the server's (or has it).
func (t *largeTurns) clientHolds(client string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[client]
	return c != nil && len(c.token) == 0
}

func TestLargeTurnsTakeNothingBelowTheirMinimum(t *testing.T) {
	var off *largeTurns
	if newLargeTurns(0, nil) != nil || off.takes(1<<30) {
		t.Fatal("turns of 0 bytes are not off")
	}
	lt := newLargeTurns(100, nil)
	if lt.takes(99) || !lt.takes(100) || !lt.takes(1<<20) {
		t.Fatalf("takes(99, 100, 1 MiB) = %v, %v, %v; want false, true, true", lt.takes(99), lt.takes(100), lt.takes(1<<20))
	}
}

func TestLargeTurnsRestAsLongAsTheTurnBefore(t *testing.T) {
	f := newFakeTurns(t)
	f.turn(t, 3*time.Millisecond)           // the first turn waits for nothing
	f.turn(t, 2*time.Millisecond)           // rests 3 ms first
	f.clock = f.clock.Add(time.Millisecond) // half the rest passes before the next asks
	f.turn(t, 80*time.Millisecond)          // rests the other 1 ms
	f.turn(t, 0)                            // rests 50 ms, not 80
	f.clock = f.clock.Add(time.Second)
	f.turn(t, 0) // long after: no rest
	want := []time.Duration{3 * time.Millisecond, time.Millisecond, maxTurnRest}
	if fmt.Sprint(f.rests) != fmt.Sprint(want) {
		t.Fatalf("rests %v, want %v", f.rests, want)
	}
	if got := f.turns.Load(); got != 5 {
		t.Errorf("turns counted %d, want 5", got)
	}
	if got, want := time.Duration(f.waited.Load()), 54*time.Millisecond; got != want {
		t.Errorf("waited %v, want %v (the rests)", got, want)
	}
	if len(f.clients) != 0 || f.bytes != 0 {
		t.Errorf("%d clients and %d bytes waiting once every turn ended, want none", len(f.clients), f.bytes)
	}
}

// A call that ends while another holds the turn gives up with its
// context's code, and leaves the turn to the one holding it; so does one
// whose server stops.
func TestLargeTurnsAreOneAtATime(t *testing.T) {
	f := newFakeTurns(t)
	done, err := f.take(context.Background(), "a", 100)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.take(ctx, "b", 100); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("take while a turn is held: %v, want DEADLINE_EXCEEDED", err)
	}
	gone, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := f.take(gone, "a", 100); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call while a turn is held: %v, want CANCELED", err)
	}
	done()
	done2, err := f.take(context.Background(), "b", 100)
	if err != nil {
		t.Fatalf("take once the turn ended: %v", err)
	}
	stopped := make(chan error)
	go func() {
		_, err := f.take(context.Background(), "c", 100)
		stopped <- err
	}()
	waitFor(t, "waiting", func() bool { return f.waiting.Load() == 1 })
	close(f.stop)
	if err := <-stopped; status.Code(err) != codes.Unavailable {
		t.Fatalf("take when the server stops: %v, want UNAVAILABLE", err)
	}
	done2()
	if got := f.gaveUp.Load(); got != 3 {
		t.Errorf("gave up %d, want 3", got)
	}
	if len(f.clients) != 0 || f.bytes != 0 || f.waiting.Load() != 0 {
		t.Errorf("%d clients, %d bytes and %d requests waiting once every take returned, want none", len(f.clients), f.bytes, f.waiting.Load())
	}
}

// A call that ends in its rest gives the turn back, and the rest still
// holds for the next.
func TestLargeTurnsGiveUpInTheRest(t *testing.T) {
	f := newFakeTurns(t)
	f.turn(t, 4*time.Millisecond)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.take(gone, "c", 100); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call in the rest: %v, want CANCELED", err)
	}
	f.turn(t, 0)
	if len(f.rests) != 1 || f.rests[0] != 4*time.Millisecond {
		t.Fatalf("rests %v, want [4ms]", f.rests)
	}
}

// One client's queue does not hold up another's: the server's turns go
// round the clients with requests waiting.
func TestLargeTurnsGoRoundTheClients(t *testing.T) {
	f := newFakeTurns(t)
	hold, err := f.take(context.Background(), "holder", 100)
	if err != nil {
		t.Fatal(err)
	}
	type turn struct {
		client string
		done   func()
	}
	turns := make(chan turn)
	ask := func(client string) {
		go func() {
			done, err := f.take(context.Background(), client, 100)
			if err != nil {
				t.Errorf("take of %s: %v", client, err)
				done = func() {}
			}
			turns <- turn{client, done}
		}()
	}
	for range 3 {
		ask("flood")
	}
	waitFor(t, "three of flood's waiting", func() bool { return f.waiting.Load() == 3 && f.clientHolds("flood") })
	ask("bystander")
	waitFor(t, "the bystander's waiting for the server's turn", func() bool { return f.waiting.Load() == 4 && f.clientHolds("bystander") })
	hold()
	var order []string
	for range 4 {
		tu := <-turns
		order = append(order, tu.client)
		tu.done()
	}
	if order[3] == "bystander" {
		t.Fatalf("turns went %v: the bystander waited behind every request of flood's", order)
	}
}

// A client may have maxWaitingPerClient bytes waiting, and the server
// maxWaiting, past which a request is refused at once, but for a client's
// first.
func TestLargeTurnsBoundWhatWaits(t *testing.T) {
	f := newFakeTurns(t)
	hold, err := f.take(context.Background(), "holder", 100)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan error, 64)
	wait := func(client string, n int) {
		go func() {
			done, err := f.take(ctx, client, n)
			if err == nil {
				done()
			}
			results <- err
		}()
	}
	wait("big", maxWaitingPerClient+1) // a client's first may always wait
	waitFor(t, "big's first waiting", func() bool { return f.waiting.Load() == 1 })
	if _, err := f.take(ctx, "big", 1); !errors.Is(err, errLargeWaiting) {
		t.Fatalf("a request past its client's bytes waiting: %v, want errLargeWaiting", err)
	}
	n := 1
	for ; f.bytes+maxWaitingPerClient/2 <= maxWaiting; n++ {
		wait(fmt.Sprint("client ", n), maxWaitingPerClient/2)
		waitFor(t, "the next client's waiting", func() bool { return f.waiting.Load() == int64(n+1) })
	}
	if _, err := f.take(ctx, "client 1", maxWaitingPerClient/2); !errors.Is(err, errLargeWaiting) {
		t.Fatalf("a client's second request past the server's bytes waiting: %v, want errLargeWaiting", err)
	}
	wait("newcomer", maxWaitingPerClient) // still, a client's first
	waitFor(t, "the newcomer's waiting", func() bool { return f.waiting.Load() == int64(n+1) })
	if got := f.refused.Load(); got != 2 {
		t.Errorf("refused %d, want 2", got)
	}
	hold()
	for range n + 1 {
		if err := <-results; err != nil {
			t.Errorf("a request let wait: %v", err)
		}
	}
	if len(f.clients) != 0 || f.bytes != 0 {
		t.Errorf("%d clients and %d bytes waiting once every turn ended, want none", len(f.clients), f.bytes)
	}
}

// The real clock and timer: a turn's rest is waited, and a waiting call
// that is cancelled returns at once.
func TestLargeTurnsRestOnTheRealClock(t *testing.T) {
	lt := newLargeTurns(1, nil)
	done, err := lt.take(context.Background(), "c", 1)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for time.Since(began) < 5*time.Millisecond { // a turn of at least 5 ms
	}
	done()
	done, err = lt.take(context.Background(), "c", 1)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(began); waited < 10*time.Millisecond {
		t.Errorf("the next turn began %v after the first, want at least 10 ms (5 ms and its rest)", waited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lt.take(ctx, "d", 1); status.Code(err) != codes.Canceled {
		t.Fatalf("take of a cancelled call while the turn is held: %v, want CANCELED", err)
	}
	done()
}

// A request refused for what waits is logged and counted under a reason
// of its own, not as too large.
func TestLargeWaitingRefusalsHaveTheirOwnReason(t *testing.T) {
	if got := decodeRefusal(errLargeWaiting); got != reasonLargeWaiting {
		t.Fatalf("decodeRefusal(errLargeWaiting) = %q, want %q", got, reasonLargeWaiting)
	}
	tooLarge := status.Error(codes.ResourceExhausted, "the request is 2000000 bytes; the limit is 1049600")
	if got := decodeRefusal(tooLarge); got != reasonTooLarge {
		t.Fatalf("decodeRefusal(too large) = %q, want %q", got, reasonTooLarge)
	}
}
