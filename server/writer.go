package server

import (
	"sync/atomic"
	"time"
)

// Subscribe streams are delivered per client connection, not per stream: the
// streams of one connection take turns on one writer goroutine, so a publish
// to a room wakes one goroutine per connection rather than one per
// subscriber, and grpc-go flushes a connection's frames together instead of
// one write system call per stream.
//
// A writer serves the sessions ready at once in three passes: it collects
// every one's batch first, then sends them back to back (so grpc-go finds
// most of the connection's frames queued when it flushes, and writes them
// in one system call more often than not), then parks them. Sessions with a
// greeting or commands to handle get a whole turn in the first pass.
//
// A shared writer must not be held up by one stream whose client stopped
// reading: grpc-go's SendMsg blocks once about 64 KiB of that stream wait in
// its queue. Nothing tells when they will drain, so the writer is watched
// instead: when one Send has been blocked for detachAfter periods, the
// sweeper retires that writer and starts another for the connection's other
// streams, which first finishes the retired one's passes. The retired
// goroutine, once its Send returns, goes on serving that one stream alone
// until it has nothing left to send, then releases it and exits: the
// stream's next wake queues it on the connection's current writer again.
//
// # The writer's states
//
// A connection has at most one current writer, which alone touches its
// lists (outConn.ready, sendq and parkq). A writer starts current: for the
// connection's first session, or as a successor:
//
//	current --its Send blocked detachAfter periods--> retired  a successor is started
//	current --panic-->                                exit     a successor is started
//	current --no session left, while waiting-->       exit
//	current --waited a whole writerIdlePeriod-->      exit     the next wake starts a writer
//	current --nothing ready, no batch sent yet-->     exit     the next wake starts a writer
//	retired --its session has nothing more to send--> exit     released parked: handed back
//	retired --its session ended, or panic-->          exit
//
// Retiring a writer and a panic in one both start a successor, which takes
// over the connection's lists; a panicking writer's held session ends with
// INTERNAL (see recover.go).
//
// A current writer goes round five phases, each but waiting and holding
// working through one of the connection's lists:
//
//	+-> sending --> parking --> waiting --> holding --> collecting --+
//	|   (sendq)     (parkq)     (signal)    (timer)     (ready)      |
//	+----------------------------------------------------------------+
//
// holding lets messages gather when the writer is busy (pacing.go), and
// takes no time otherwise; collecting claims each ready session and either
// gives it a whole turn (it is busy) or collects its batch onto sendq, or
// parks it; sending sends each batch and moves the session to parkq; parking
// parks and releases them. A session stays on a list until its writer takes
// it off, so when a writer is retired in any phase, its successor, starting
// at sending, finds the rest. Holding touches no list: sessions that become
// ready meanwhile queue as they would while the writer collects.

// detachPeriod is the watch's period; a Send still blocked detachAfter
// periods after the one it began in, so for 5 to 10 ms, moves its stream off
// the shared writer.
const (
	detachPeriod = 5 * time.Millisecond
	detachAfter  = 2
)

// writerIdlePeriod is how long a connection's writer waits without work
// before the sweeper stops it: between one and two periods
// (withWriterIdlePeriod). The sweeper keeps the time, so waiting costs a
// writer no timer.
//
// Only a writer that has sent messages waits, as more are likely to
// follow. One that has only given turns (greetings, replies to commands)
// exits as soon as nothing is ready: it is what every new stream starts,
// and when many streams open at once (clients connecting after a restart)
// those writers would otherwise all exit a second later, after the
// streams' handlers took their stacks, leaving a freed stack among theirs
// that nothing reuses while the server is idle: about 8 KB per connection
// with one stream (internal/idlemem).
const writerIdlePeriod = time.Second

// connWriter is one goroutine serving an outConn's ready sessions. Only the
// connection's current writer runs the passes over its lists; a retired one
// touches nothing but the one session it holds.
type connWriter struct {
	c             *outConn
	signal        chan struct{} // capacity 1: pokes w while it waits
	sendStartedAt atomic.Int64  // the server's detachClock when the current Send began; 0 when not sending
	retired       bool          // guarded by c.mu: no longer the current writer
	holding       *session      // the session w works on off every list, for recoverPanic; w's own
	idleSeen      bool          // guarded by c.mu: the sweeper found w waiting, and it has waited since
	stopped       bool          // guarded by c.mu: stopped while it waited; see stopIfIdle
	served        bool          // w has served a round; w's own
	delivered     bool          // w has sent a collected batch; w's own: until then it exits when idle
	holdTimer     pauseTimer    // for holds (pacing.go); w's own
	wokeAt        int64         // the server's clock when wait last woke w, for hold; 0 if it did not wait. w's own
}

func (w *connWriter) run() {
	defer w.c.srv.goroutines.Done()
	defer w.c.srv.writers.Delete(w)
	defer w.recoverPanic()
	for {
		// A successor first finishes its predecessor's passes.
		if !w.sendAll() {
			return
		}
		w.parkAll()
		if !w.wait() {
			return
		}
		w.hold()
		if !w.collectAll() {
			return
		}
		w.served = true
	}
}

// wait waits until a session is ready to be served, and reports false when
// w should exit: the connection has no session left, w has served a round
// without sending a batch yet (see writerIdlePeriod), or the sweeper
// stopped w for having waited a whole writerIdlePeriod. An idle writer's
// stack is most of what an idle connection costs beyond grpc-go's own; the
// next wake starts another (see outConn.push).
func (w *connWriter) wait() bool {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	w.idleSeen = false
	w.wokeAt = 0
	for c.ready.len() == 0 {
		if c.sessions == 0 || w.served && !w.delivered {
			c.writer, c.waiting = nil, false
			return false
		}
		c.waiting = true
		c.mu.Unlock()
		<-w.signal
		c.mu.Lock()
		if w.stopped {
			return false
		}
		c.srv.writes.wakes.Add(1)
		w.wokeAt = c.srv.now()
		c.pacer.woke(w.wokeAt - c.pokedAt)
	}
	return true
}

// stopIfIdle stops w if it has waited since the sweeper's previous call,
// a writerIdlePeriod ago, and otherwise notes whether it waits now. The
// connection's next wake starts a new writer.
func (w *connWriter) stopIfIdle() {
	c := w.c
	c.mu.Lock()
	if c.writer != w || !c.waiting {
		c.mu.Unlock()
		return
	}
	if !w.idleSeen {
		w.idleSeen = true
		c.mu.Unlock()
		return
	}
	w.stopped = true
	c.writer, c.waiting = nil, false
	c.mu.Unlock()
	w.poke()
}

// collectAll is the first pass, over the ready sessions: each gets a whole
// turn if it is busy, and otherwise has its batch collected for sendAll, or
// is parked if it has none. Sessions stay in the ready list until their
// turn, so if w is retired in a turn the connection's new writer takes them
// over; collectAll then reports false.
//
// A pass covers the sessions ready when it starts, so one whose turn leaves
// it ready again waits for the next, behind the batches collected.
func (w *connWriter) collectAll() bool {
	c := w.c
	c.mu.Lock()
	n := c.ready.len()
	c.mu.Unlock()
	c.srv.writes.passes.Add(1)
	responses, bufs := 0, 0
	for ; n > 0; n-- {
		ss := c.pop(&c.ready)
		if ss == nil {
			break
		}
		if !ss.claim() {
			continue
		}
		w.holding = ss
		if ss.busy() {
			more, err := ss.turn(w)
			if w.isRetired() {
				w.serveAlone(ss, more, err)
				return false
			}
			ss.release(more, err, false)
		} else if ready, err := ss.collect(); err == nil && ready {
			responses, bufs = responses+1, bufs+len(ss.out.bufs)
			c.pacer.served(&ss.servedAt, len(ss.out.bufs))
			c.mu.Lock()
			c.sendq.push(ss)
			c.mu.Unlock()
		} else {
			more := false
			if err == nil {
				more, err = ss.parkEmpty()
			}
			ss.release(more, err, false)
		}
		w.holding = nil
	}
	c.pacer.collected(responses, bufs) // a retired writer returned above: the pacer is the new one's
	return true
}

// sendAll is the second pass: it sends the collected batches, queueing each
// session for parkAll. It reports false if w was retired during a Send; the
// connection's new writer then sends the rest.
func (w *connWriter) sendAll() bool {
	c := w.c
	sent := uint64(0)
	defer func() { c.srv.writes.sends.Add(sent) }() // once per pass, not per Send: writers share the counter
	for ss := c.pop(&c.sendq); ss != nil; ss = c.pop(&c.sendq) {
		w.holding = ss
		w.delivered = true
		sent++
		err := ss.sendCollected(w)
		c.mu.Lock()
		if w.retired {
			c.mu.Unlock()
			more := err == nil && ss.parkSent()
			w.serveAlone(ss, more, err)
			return false
		}
		if err == nil {
			c.parkq.push(ss)
		}
		c.mu.Unlock()
		if err != nil {
			ss.release(false, err, false)
		}
		w.holding = nil
	}
	return true
}

// isRetired reports whether w was retired during its last Send. It is read
// under the lock retireIfBlocked retires it under, after the Send cleared
// sendStartedAt, so the two always agree on whether that Send was retired.
func (w *connWriter) isRetired() bool {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.retired
}

// parkAll is the third pass: it parks and releases the sessions sendAll
// sent.
func (w *connWriter) parkAll() {
	c := w.c
	for ss := c.pop(&c.parkq); ss != nil; ss = c.pop(&c.parkq) {
		w.holding = ss
		ss.release(ss.parkSent(), nil, false)
		w.holding = nil
	}
}

// serveAlone goes on serving ss, which a retired w holds, until it has
// nothing left to do at once, starting from the turn that ended with more
// and err. Releasing it parked hands it back: its next wake queues it on the
// connection's current writer.
func (w *connWriter) serveAlone(ss *session, more bool, err error) {
	for ss.release(more, err, true) {
		more, err = ss.turn(w)
	}
	w.holding = nil
}

// retireIfBlocked retires w if its current Send has been blocked since before
// the detach clock read now-detachAfter, starting a new writer for the
// connection's other sessions. The sweeper calls it every detachPeriod.
func (w *connWriter) retireIfBlocked(now int64) {
	if began := w.sendStartedAt.Load(); began == 0 || now-began < detachAfter {
		return
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer != w || w.sendStartedAt.Load() == 0 {
		return
	}
	w.retired = true
	c.start()
	c.srv.detached.Add(1)
}
