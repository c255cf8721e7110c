package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// An accept that waits for the pace goes ahead as soon as an
// authentication brings the count of connections awaiting it back to the
// threshold, however slow the pace: a reconnection storm runs at the
// speed of its own handshakes.
func TestPacedAcceptGoesAheadWhenTheCountEases(t *testing.T) {
	p, pending := slowPacer(t)
	if n := p.accepts(); n != 0 {
		t.Fatalf("%d accepts waited within the burst, want 0", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.wait(nil, pending.Load)
	}()
	waitFor(t, "waiting for the pace", func() bool { return p.accepts() == 1 })
	select {
	case <-done:
		t.Fatal("an accept past the burst went ahead with the count above the threshold")
	default:
	}
	p.authenticated(pending.Add(-1))
	select { // a pace of one token in 30 years would never let it in
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting accept did not go ahead once the count was back to the threshold")
	}
}

// One easing lets every waiting accept go ahead, those of both listeners
// (gRPC and web), at once: not one of them, the others a sweep later.
func TestAnEasingReachesEveryWaitingAccept(t *testing.T) {
	p, pending := slowPacer(t)
	done := make(chan struct{}, 2)
	for range 2 {
		go func() {
			p.wait(nil, pending.Load)
			done <- struct{}{}
		}()
	}
	waitFor(t, "both waiting for the pace", func() bool { return p.accepts() == 2 })
	p.authenticated(pending.Add(-1))
	for i := range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of 2 waiting accepts went ahead once the count was back to the threshold", i)
		}
	}
}

// slowPacer returns a pacer past its threshold of one, with two
// connections awaiting authentication, whose burst is spent and whose pace
// is one accept in 30 years: a waiting accept goes ahead only on an easing.
func slowPacer(t *testing.T) (*acceptPacer, *atomic.Int64) {
	t.Helper()
	authn, err := auth.NewAuthenticator(auth.WithAnonymous(auth.Grants{}))
	if err != nil {
		t.Fatal(err)
	}
	p := newAcceptPacer(&config{authn: authn, limits: limits{authTimeout: time.Hour, acceptPaceAfter: 1, acceptPace: 1e-9, acceptPaceBurst: 1}})
	pending := new(atomic.Int64)
	pending.Store(2)
	p.wait(nil, pending.Load) // the burst's one token
	return p, pending
}
