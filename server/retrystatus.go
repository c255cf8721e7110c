package server

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Under a flood past a rate, most calls are refused, and building each
// refusal's status (its message, and a RetryInfo detail marshalled into an
// Any) cost about 6% of the server's CPU in attacks (f) and (i) of issue
// #13. The statuses are immutable once built, so a rate's refusals share
// them, one per whole millisecond of their wait (rounded up: a caller told
// a whole millisecond never comes back before the slot it was advised; see
// auth.RateLimiter) for waits within maxSharedWait, and one for the rate's
// longest advice (auth.RateLimiter.MaxRetryAfter), which every crowded
// refusal that found the slots full is told: a flood that ignores its
// advice is refused with that one, however long it is. Other longer waits, which a limiter advises
// only at low rates and not to a flood, get statuses of their own.

// maxSharedWait bounds the waits whose statuses are shared by millisecond:
// the default read rate's longest advice (its burst of 200 at 100 a second)
// and then some. A retryStatuses holds at most one status per millisecond
// of it.
const maxSharedWait = 4 * time.Second

// retryStatuses are the shared refusal statuses of one rate. It is safe for
// concurrent use; its zero value is not: see newRetryStatuses.
type retryStatuses struct {
	build   func(wait time.Duration) error
	byMs    []atomic.Pointer[sharedStatus] // by whole milliseconds of wait
	longest time.Duration                  // the rate's longest advice; 0: none
	atMost  atomic.Pointer[sharedStatus]   // the refusal for longest
}

type sharedStatus struct{ err error }

// newRetryStatuses returns the shared statuses that build makes for a
// wait, for a rate whose longest advice is longest (0 for one that has
// none).
func newRetryStatuses(build func(wait time.Duration) error, longest time.Duration) *retryStatuses {
	return &retryStatuses{build: build, byMs: make([]atomic.Pointer[sharedStatus], maxSharedWait/time.Millisecond+1), longest: longest}
}

// refusal returns the status of a refusal for wait, rounded up to a whole
// millisecond within maxSharedWait. Two callers that build the same status
// at once each use their own; one of them is kept.
func (r *retryStatuses) refusal(wait time.Duration) error {
	// Compared before rounding, which would overflow near the longest
	// Duration: a rate below about 1.1e-10 a second advises such a wait.
	if wait > maxSharedWait {
		if wait == r.longest {
			return r.shared(&r.atMost, wait)
		}
		return r.build(wait)
	}
	wait = max(wait, 0)
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	return r.shared(&r.byMs[ms], ms*time.Millisecond)
}

// shared returns the status in p, building it for wait if there is none.
func (r *retryStatuses) shared(p *atomic.Pointer[sharedStatus], wait time.Duration) error {
	if s := p.Load(); s != nil {
		return s.err
	}
	s := &sharedStatus{err: r.build(wait)}
	p.Store(s)
	return s.err
}

// retryError is a command refusal's status, with the RetryInfo detail's
// delay kept beside it for the reply's Error.retry_after: a reply carries
// no details, and unmarshalling the detail for each refusal would cost an
// allocation or two. It is immutable, so refusals share it, Duration and
// all: every reply that carries the Duration only reads it.
type retryError struct {
	st    *status.Status
	msg   string
	after *durationpb.Duration
}

// retryCommand is the RESOURCE_EXHAUSTED refusal of a command past a rate
// for wait, as retryLater's for a call.
func retryCommand(wait time.Duration, msg string) error {
	err := retryLater(wait, msg)
	return &retryError{st: status.Convert(err), msg: err.Error(), after: durationpb.New(wait)}
}

func (e *retryError) Error() string { return e.msg }

// GRPCStatus makes e a status error: status.FromError returns its status.
func (e *retryError) GRPCStatus() *status.Status { return e.st }
