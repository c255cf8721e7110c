package server

import (
	"sync/atomic"
	"time"
)

// Under a flood past a rate, most calls are refused, and building each
// refusal's status (its message, and a RetryInfo detail marshalled into an
// Any) cost about 6% of the server's CPU in attacks (f) and (i) of issue
// #13. The statuses are immutable once built, so a rate's refusals share
// them, one per whole millisecond of their wait (rounded up: a caller told
// a whole millisecond never comes back before the slot it was advised; see
// auth.RateLimiter) for waits within maxSharedWait. Longer waits, which a
// limiter advises only at low rates, get statuses of their own.

// maxSharedWait bounds the waits whose statuses are shared: the default
// read rate's longest advice (its burst of 200 at 100 a second) and then
// some. A retryStatuses holds at most one status per millisecond of it.
const maxSharedWait = 4 * time.Second

// retryStatuses are the shared refusal statuses of one rate. It is safe for
// concurrent use; its zero value is not: see newRetryStatuses.
type retryStatuses struct {
	build func(wait time.Duration) error
	byMs  []atomic.Pointer[sharedStatus] // by whole milliseconds of wait
}

type sharedStatus struct{ err error }

// newRetryStatuses returns the shared statuses that build makes for a
// wait.
func newRetryStatuses(build func(wait time.Duration) error) *retryStatuses {
	return &retryStatuses{build: build, byMs: make([]atomic.Pointer[sharedStatus], maxSharedWait/time.Millisecond+1)}
}

// refusal returns the status of a refusal for wait, rounded up to a whole
// millisecond. Two callers that build the same status at once each use
// their own; one of them is kept.
func (r *retryStatuses) refusal(wait time.Duration) error {
	wait = max(wait, 0)
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	if ms >= time.Duration(len(r.byMs)) {
		return r.build(wait)
	}
	p := &r.byMs[ms]
	if s := p.Load(); s != nil {
		return s.err
	}
	s := &sharedStatus{err: r.build(ms * time.Millisecond)}
	p.Store(s)
	return s.err
}
