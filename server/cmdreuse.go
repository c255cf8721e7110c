package server

import (
	"sync"
	"time"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Under a flood of commands (attack (e) of issue #13) the reader decoded
// each into a request of its own and paused after each refusal on a timer
// of its own: garbage by the hundred thousand a second, which the
// collections a bystander's tail paid for cleared. A session's turns hand
// the requests they have handled back to its reader, and its reader pauses
// on one timer.

// requestSpares holds requests a session's turns have handled, for its
// reader to decode the next commands into. What a turn keeps of a handled
// request (its strings, and its command's sub-messages, such as a join's
// Info map, which the broker keeps) stays whole, because put empties a
// request with Reset, which drops its sub-messages rather than emptying
// them, and a decoding makes new ones: a put that emptied them in place
// (vtprotobuf's ResetVT with pooling) or a merging decode would overwrite
// what the broker keeps. Its zero value is empty and ready; it is safe for
// concurrent use.
type requestSpares struct {
	mu   sync.Mutex
	n    int
	reqs [maxSpareRequests]*roomcastv1.SubscribeRequest
}

// maxSpareRequests bounds a session's spares: every session carries their
// array, and keeps the requests for its life, so an idle stream holds
// little (issue #14's idle memory); a reader that refuses a command pauses,
// so few requests are in flight at once.
const maxSpareRequests = 8

// get returns a spare request, or a new one if there is none.
func (s *requestSpares) get() *roomcastv1.SubscribeRequest {
	s.mu.Lock()
	if s.n == 0 {
		s.mu.Unlock()
		return new(roomcastv1.SubscribeRequest)
	}
	s.n--
	r := s.reqs[s.n]
	s.reqs[s.n] = nil
	s.mu.Unlock()
	return r
}

// put keeps r, which its turn has handled and no one uses any longer,
// emptied so that a spare holds no command's bytes; past maxSpareRequests
// spares it is dropped.
func (s *requestSpares) put(r *roomcastv1.SubscribeRequest) {
	r.Reset()
	s.mu.Lock()
	if s.n < len(s.reqs) {
		s.reqs[s.n] = r
		s.n++
	}
	s.mu.Unlock()
}

// pauseTimer is a goroutine's repeated pause, on one timer made at its
// first (timers since Go 1.23 deliver no stale tick after Reset or Stop):
// a stream reader's refusal pauses, a connection writer's holds. Its owner
// serializes its calls.
type pauseTimer struct{ t *time.Timer }

// timer returns the timer, set to fire after d, for a wait of the owner's
// own (which stops it if it returns before).
func (p *pauseTimer) timer(d time.Duration) *time.Timer {
	if p.t == nil {
		p.t = time.NewTimer(d)
	} else {
		p.t.Reset(d)
	}
	return p.t
}

// wait waits d, or until done or stop is closed (a nil one never is), and
// reports whether d passed.
func (p *pauseTimer) wait(d time.Duration, done, stop <-chan struct{}) bool {
	p.timer(d)
	select {
	case <-p.t.C:
		return true
	case <-done:
	case <-stop:
	}
	p.t.Stop()
	return false
}
