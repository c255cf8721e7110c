package client

import (
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A rejoin that a command rate refuses (code 8, RESOURCE_EXHAUSTED, with
// the delay after which it may be sent again) is sent again on the same
// stream after that delay, alone: a fleet of one key rejoining more rooms
// than the credential's burst was otherwise served far below the rate, each
// client refused part way reconnecting and rejoining every room again
// (issue #13). The refused rejoins wait in a queue and are sent one at a
// time, each once the previous one's reply has come (after the delay its
// refusal advised): the server pauses a stream's reads after each refusal,
// and a burst of resends would only be refused again. Meanwhile the
// stream's messages are staged and the Reconnected event waits, as for
// any rejoin. So a refusal that comes once the rejoin has lasted
// rejoinRetryFor stops the resends, and so does staging stagedMessages
// messages or queueBytes of payload once a rejoin has been refused for the
// rate (the receiver reads on while rejoins wait, lest the server cut the
// stream off for a write it could not make): the stream is given up as
// before, and the subscription reconnects after its backoff. A rejoin that
// no rate refused waits for no delay, and stages unbounded as before: a
// bound would make one whose rooms recover more than it reconnect again and
// again.
const (
	rejoinRetryFor = 30 * time.Second
	stagedMessages = 16 * queueMessages
)

// rateWait is a conn's rejoins waiting to be sent again. Guarded by
// Subscription.mu.
type rateWait struct {
	rooms       []*roomState  // refused, to be sent again in this order
	timer       *time.Timer   // sends the first of rooms; nil when none is armed
	inFlight    bool          // a resent rejoin waits for its reply
	stopped     bool          // the stream has ended: send nothing more
	giveUpAt    time.Time     // past it, a refusal makes the subscription reconnect
	waited      bool          // a rejoin was refused for the rate: the staging limits apply
	stagedBytes int           // payload of c.staged
	wait        time.Duration // the longest delay advised since the timer was last armed
}

// retryLater queues the rejoin of st, refused with e, to be sent again, if
// e is a command rate's refusal with a delay and the rejoin may still wait.
// Caller holds mu.
func (s *Subscription) retryLater(c *conn, st *roomState, e *roomcastv1.Error) bool {
	w := &c.rateWait
	if codes.Code(e.GetCode()) != codes.ResourceExhausted || e.GetRetryAfter() == nil ||
		c.fatal != nil || c.retry != nil || w.stopped {
		return false
	}
	wait := max(e.GetRetryAfter().AsDuration(), 0)
	if time.Now().Add(wait).After(w.giveUpAt) || c.stagedFull() {
		return false
	}
	w.rooms = append(w.rooms, st)
	w.wait = max(w.wait, wait)
	w.waited = true
	return true
}

// overStaged reports whether c, rejoining after a refusal for the rate,
// has staged more than it may while it waits. Caller holds mu.
func (c *conn) overStaged() bool { return c.rateWait.waited && c.stagedFull() }

// stagedFull reports whether c has staged as much as a rejoin that waits
// for the rate may. Caller holds mu.
func (c *conn) stagedFull() bool {
	return len(c.staged) >= stagedMessages || c.rateWait.stagedBytes >= queueBytes
}

// giveUp ends c, whose rejoin failed with err, for the subscription to
// reconnect; a fatal error already recorded stays the reason. Caller holds
// mu.
func (c *conn) giveUp(err error) {
	switch {
	case c.fatal != nil: // the first one says why
	case permanent(err):
		c.fatal = err
	case c.retry == nil:
		c.retry = err
	}
	c.cancel()
}

// unqueue takes st out of c's rejoins waiting to be sent again, counting
// its rejoin done, and reports whether it was there. Caller holds mu.
func (s *Subscription) unqueue(c *conn, st *roomState) bool {
	w := &c.rateWait
	i := slices.Index(w.rooms, st)
	if i < 0 {
		return false
	}
	w.rooms = slices.Delete(w.rooms, i, i+1)
	s.rejoinDone(c)
	return true
}

// resendNext arms the timer that sends the first queued rejoin, unless one
// is armed or in flight, or c is given up: after the longest delay advised
// since the timer was last armed when e, the error of the join reply just
// read, is a refusal for a rate, or at once when the reply was not one.
// Caller holds mu.
func (s *Subscription) resendNext(c *conn, e *roomcastv1.Error) {
	w := &c.rateWait
	if w.stopped || w.inFlight || w.timer != nil || len(w.rooms) == 0 || c.fatal != nil || c.retry != nil {
		return
	}
	wait := time.Duration(0)
	if codes.Code(e.GetCode()) == codes.ResourceExhausted {
		wait = max(w.wait, e.GetRetryAfter().AsDuration())
	}
	w.wait = 0
	c.sending.Add(1) // the timer's; ended waits for it, or stopResends undoes it
	w.timer = time.AfterFunc(wait, func() { s.resend(c) })
}

// resend, the timer's function, sends the first queued rejoin that is
// still of the subscription.
func (s *Subscription) resend(c *conn) {
	defer c.sending.Done()
	s.mu.Lock()
	w := &c.rateWait
	w.timer = nil
	var req *roomcastv1.SubscribeRequest
	for !w.stopped && req == nil && len(w.rooms) > 0 {
		st := w.rooms[0]
		w.rooms[0], w.rooms = nil, w.rooms[1:]
		if s.rooms[st.name] != st {
			s.rejoinDone(c) // left since: nothing to rejoin
			continue
		}
		w.inFlight = true
		req = s.register(c, &pending{kind: cmdJoin, room: st, rejoin: true, resent: true}, joinCommand(st))
	}
	s.mu.Unlock()
	if req == nil {
		notify(s.arrived) // the rejoin may be done
		return
	}
	s.resent.Add(1)
	s.wake()    // the receiver reads past a full queue until the reply comes
	c.send(req) // if the stream is gone, run learns why from reading it
}

// stopResends stops c's resends once its stream has ended; ended then waits
// for a resend under way.
func (s *Subscription) stopResends(c *conn) {
	s.mu.Lock()
	w := &c.rateWait
	w.stopped = true
	if w.timer != nil && w.timer.Stop() {
		c.sending.Done() // its function will not run
	}
	w.timer, w.rooms = nil, nil
	s.mu.Unlock()
}
