package server

// A session's scheduling is a small state machine, guarded by session.mu.
// It makes sure a session is at most once in its connection's ready list,
// is served by at most one writer at a time, and is finished (its rooms left,
// its connection told) exactly once, by whoever holds it when it ends.
//
//	parked --wake--> queued --claim--> held --wake--> woken
//
// A writer releases a held or woken session after its turn; woken counts as
// having more to do:
//
//	held, woken --release--> parked   nothing more to do: parked in the broker
//	                         queued   more, on the shared writer: behind the others
//	                         held     more, on a retired writer: served again at once
//
// A session ends when the handler's close, a turn's error or its writer's
// panic moves it to closed; whichever does finishes it:
//
//	parked, queued       --close-->        closed   close finishes it at once
//	held, woken          --close-->        closing  the writer still owns the subscriber,
//	closing              --release-->      closed     so release finishes it
//	held, woken          --release(err)--> closed   release finishes it
//	held, woken, closing --abort-->        closed   its writer panicked: the recovery finishes it
//
// A closed session may still be in the ready list: claim then reports false
// and the writer drops it. wake, the broker's notify func and the reader's
// nudge, does nothing in closing or closed.

// schedState is where a session stands with its connection's writers.
type schedState uint8

const (
	schedParked  schedState = iota // waits for a room (or a command) to wake it
	schedQueued                    // in its connection's ready list
	schedHeld                      // a writer serves it
	schedWoken                     // a writer serves it and it was woken meanwhile: it gets another turn
	schedClosing                   // ended while held: the holder finishes it at release
	schedClosed                    // ended: never served again
)

func (s schedState) String() string {
	switch s {
	case schedParked:
		return "parked"
	case schedQueued:
		return "queued"
	case schedHeld:
		return "held"
	case schedWoken:
		return "woken"
	case schedClosing:
		return "closing"
	case schedClosed:
		return "closed"
	}
	return "invalid"
}

// wake gives the session a turn on its connection's writer, or another one
// if it is being served. Callers may hold a broker room lock (wake is the
// subscriber's notify func) or Server.mu (beginStop), so it must not block
// nor call into the broker; it lets go of session.mu before it takes
// outConn.mu.
func (ss *session) wake() {
	ss.mu.Lock()
	switch ss.sched {
	case schedParked:
		ss.sched = schedQueued
		ss.mu.Unlock()
		ss.conn.push(ss)
		return
	case schedHeld:
		ss.sched = schedWoken
	}
	ss.mu.Unlock()
}

// claim makes the calling writer the session's holder, once it took the
// session off the ready list; false if it ended meanwhile.
func (ss *session) claim() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.sched != schedQueued {
		return false // closed while queued; close finished it
	}
	ss.sched = schedHeld
	return true
}

// release ends a turn that reported more and err. It reports whether the
// writer should serve the session again at once, which only a retired writer
// does; a shared one queues it behind the connection's other sessions.
func (ss *session) release(more bool, err error, retired bool) (again bool) {
	if err != nil {
		ss.endWith(err)
	}
	ss.mu.Lock()
	if err != nil || ss.sched == schedClosing {
		ss.sched = schedClosed
		ss.mu.Unlock()
		ss.finish()
		return false
	}
	more = more || ss.sched == schedWoken
	switch {
	case more && retired:
		ss.sched = schedHeld
		ss.mu.Unlock()
		return true
	case more:
		ss.sched = schedQueued
		ss.mu.Unlock()
		ss.conn.push(ss)
	default:
		ss.sched = schedParked
		ss.mu.Unlock()
	}
	return false
}

// close ends the session for the handler: nothing more is served, and the
// session is finished now unless a writer holds it, which then will.
func (ss *session) close() {
	ss.mu.Lock()
	from := ss.sched
	switch from {
	case schedParked, schedQueued:
		ss.sched = schedClosed
	case schedHeld, schedWoken:
		ss.sched = schedClosing
	}
	if ss.expiry != nil {
		ss.expiry.Stop()
	}
	ss.mu.Unlock()
	if from == schedParked || from == schedQueued {
		ss.finish()
	}
}

// abort ends the session with INTERNAL after a panic in the writer that
// held it, and finishes it in that writer's place, which will never release
// it. A session the writer no longer held is left alone.
func (ss *session) abort() {
	ss.sendStartedAt.Store(0) // not to be cut off as stalled, on a Send that ended in the panic
	ss.mu.Lock()
	held := ss.sched == schedHeld || ss.sched == schedWoken || ss.sched == schedClosing
	if held {
		ss.sched = schedClosed
	}
	ss.mu.Unlock()
	if held {
		ss.endWith(ss.panicked())
		ss.finish()
	}
}

// ended reports whether the session is closing or closed. Caller holds mu.
func (ss *session) ended() bool { return ss.sched >= schedClosing }

// finish leaves the session's rooms and its connection. It runs once, on
// whichever side moved the session to closed, with no lock held.
func (ss *session) finish() {
	ss.sub.Close()
	ss.conn.unregister()
}
