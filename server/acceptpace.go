package server

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Accepting a connection costs the server a burst of work in grpc-go (three
// goroutines, their stacks, its SETTINGS exchange: about 0.2 ms of CPU on
// loopback, kernel included), whether or not the client ever calls. A
// client that opens thousands of connections and never calls (issue #13
// (g)) makes the server do that work thousands of times a second, ahead of
// every other client's goroutines in the run queue. So while many
// connections await authentication, the guard accepts new ones at a pace;
// the others wait in the kernel's backlog, where they cost nothing.
//
// Clients that authenticate on their first call leave the count as they
// make it, and each that does lets the next connection in at once, whatever
// the pace: during a reconnection storm the accepts keep up with the
// server's own handshakes and first calls, and the pace bites only when
// connections pile up unauthenticated.

// Defaults of WithAcceptPace. The threshold lets a hundred handshakes
// whose first calls have not arrived yet run at once, enough to keep a
// 2-core server busy through a reconnection storm; past it, the storm's
// accepts go as fast as its calls authenticate. The pace lets an
// attacker's idle connections cost the server about 2% of a core (0.15 to
// 0.2 ms each, measured under attack (g)), in bursts of a couple of
// milliseconds of work at most. An idle
// connection is closed after WithAuthTimeout, so with the defaults an
// attacker holds at most DefaultAcceptPaceAfter + 10 s × DefaultAcceptPace
// of them (1,100).
const (
	DefaultAcceptPaceAfter = 100
	DefaultAcceptPace      = 100
	DefaultAcceptPaceBurst = 10
)

// WithAcceptPace paces new connections while more than after connections
// await authentication (accepted, with no authenticated call yet): past
// that, the server accepts at most perSecond a second, in bursts of burst,
// and leaves the rest in the kernel's listen backlog; an accept also goes
// ahead as soon as a waiting connection authenticates and brings the count
// back to after. Accepts that waited are counted in
// roomcast_connections_paced_accepts_total. It applies only with
// WithAuthenticator and a WithAuthTimeout, which bounds how long an idle
// connection counts. The default is DefaultAcceptPaceAfter (100)
// connections, DefaultAcceptPace (100) a second and DefaultAcceptPaceBurst
// (10); perSecond 0 never paces.
func WithAcceptPace(after int, perSecond float64, burst int) Option {
	return func(c *config) { c.acceptPaceAfter, c.acceptPace, c.acceptPaceBurst = after, perSecond, burst }
}

// validateAcceptPace checks WithAcceptPace's settings.
func (l *limits) validateAcceptPace() error {
	switch {
	case l.acceptPaceAfter < 0:
		return fmt.Errorf("server: accept pace threshold must not be negative, got %d", l.acceptPaceAfter)
	case !(l.acceptPace >= 0) || math.IsInf(l.acceptPace, 0):
		return fmt.Errorf("server: accept pace must be a finite number of connections a second, 0 or more, got %v", l.acceptPace)
	case l.acceptPace > 0 && l.acceptPaceBurst < 1:
		return fmt.Errorf("server: accept pace needs a positive burst, got %v/s burst %d", l.acceptPace, l.acceptPaceBurst)
	}
	return nil
}

// acceptPacer holds the accepts of a guard's listeners while more than
// after connections await authentication. It is safe for concurrent use.
type acceptPacer struct {
	after   int64
	limiter *rate.Limiter
	paced   atomic.Uint64 // accepts that waited, counted as they begin to

	mu sync.Mutex
	// eased is closed, and replaced, when an authentication brings the
	// count back to after: every waiting accept, of each listener, looks
	// at the count again.
	eased chan struct{}
}

// newAcceptPacer returns a pacer for cfg, or nil if accepts are not paced.
func newAcceptPacer(cfg *config) *acceptPacer {
	if cfg.authn == nil || cfg.authTimeout <= 0 || cfg.acceptPace <= 0 {
		return nil
	}
	return &acceptPacer{
		after:   int64(cfg.acceptPaceAfter),
		limiter: rate.NewLimiter(rate.Limit(cfg.acceptPace), cfg.acceptPaceBurst),
		eased:   make(chan struct{}),
	}
}

// wait returns once the next connection may be accepted while pending
// connections await authentication, reporting true, or once closed is,
// reporting false. It asks pending again at least every sweepEvery, which
// finds the connections that closed without authenticating. Only the
// listeners' accept loops call it.
func (p *acceptPacer) wait(closed <-chan struct{}, pending func() int64) bool {
	if p == nil {
		return true
	}
	for waited := false; ; {
		eased := p.easedChan() // before the count, so that no easing is missed
		if pending() <= p.after {
			return true
		}
		r := p.limiter.Reserve()
		d := r.Delay()
		if d == 0 {
			return true
		}
		if !waited {
			waited = true
			p.paced.Add(1)
		}
		t := time.NewTimer(min(d, sweepEvery))
		select {
		case <-t.C:
			if d <= sweepEvery {
				return true
			}
		case <-eased:
			t.Stop()
		case <-closed:
			t.Stop()
			r.Cancel()
			return false
		}
		r.Cancel() // the token goes back; the loop looks at the count again
	}
}

// easedChan returns the channel the next easing closes.
func (p *acceptPacer) easedChan() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eased
}

// accepts returns how many accepts waited.
func (p *acceptPacer) accepts() uint64 {
	if p == nil {
		return 0
	}
	return p.paced.Load()
}

// authenticated tells the pacer that a connection left the count, which
// now has pending.
func (p *acceptPacer) authenticated(pending int64) {
	if p == nil || pending > p.after {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.eased)
	p.eased = make(chan struct{})
}
