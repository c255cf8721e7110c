package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/peer"
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
// instead: when one Send has been blocked for detachBeats beats, the
// sweeper retires that writer and starts another for the connection's other
// streams, which first finishes the retired one's passes. The retired
// goroutine, once its Send returns, goes on serving that one stream alone
// until it has nothing left to send, then exits.

// detachBeat is the watch's period; a Send still blocked detachBeats beats
// after the one it began in, so for 5 to 10 ms, moves its stream off the
// shared writer.
const (
	detachBeat  = 5 * time.Millisecond
	detachBeats = 2
)

// outConn is one client connection's side of delivery: the streams ready to
// be served, and the goroutine serving them.
type outConn struct {
	srv *Server
	key string // in srv.conns

	mu       sync.Mutex
	ready    queue // waiting for a turn
	sendq    queue // collected, waiting to be sent
	parkq    queue // sent, waiting to be parked and released
	sessions int   // registered sessions
	writer   *connWriter
	idle     bool          // the writer waits for signal
	signal   chan struct{} // capacity 1
}

// queue is a first-in first-out list of sessions, guarded by its outConn's
// mu.
type queue struct {
	items []*session
	head  int
}

func (q *queue) push(ss *session) { q.items = append(q.items, ss) }

func (q *queue) len() int { return len(q.items) - q.head }

// pop removes and returns the first session; nil if there is none. An
// emptied queue keeps its array for the next round.
func (q *queue) pop() *session {
	if q.len() == 0 {
		return nil
	}
	ss := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.len() == 0 {
		q.items, q.head = q.items[:0], 0
	}
	return ss
}

// pop takes the first session of q, one of c's queues.
func (c *outConn) pop(q *queue) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return q.pop()
}

// connWriter is one goroutine serving an outConn's ready sessions. Only the
// connection's current writer runs the passes over its queues; a retired one
// touches nothing but the one session it holds.
type connWriter struct {
	c       *outConn
	since   atomic.Int64 // the server's beat when the current Send began; 0 when not sending
	retired bool         // replaced while blocked: finish the current session alone, then exit; guarded by c.mu
}

// register counts one more session, starting a writer if none runs. Caller
// holds srv.connsMu.
func (c *outConn) register() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions++
	if c.writer == nil {
		c.start()
	}
}

// unregister is register's undo, once a session will never be served again.
func (c *outConn) unregister() {
	c.srv.connsMu.Lock()
	defer c.srv.connsMu.Unlock()
	c.mu.Lock()
	c.sessions--
	wake := false
	if c.sessions == 0 {
		if c.srv.conns[c.key] == c {
			delete(c.srv.conns, c.key)
		}
		wake, c.idle = c.idle, false // so an idle writer exits
	}
	c.mu.Unlock()
	if wake {
		c.poke()
	}
}

// start runs a new writer for the connection. Caller holds mu.
func (c *outConn) start() {
	w := &connWriter{c: c}
	c.writer = w
	c.srv.goroutines.Add(1)
	c.srv.writers.Store(w, struct{}{})
	go w.run()
}

// push queues ss for a turn.
func (c *outConn) push(ss *session) {
	c.mu.Lock()
	c.ready.push(ss)
	wake := c.idle
	c.idle = false
	c.mu.Unlock()
	if wake {
		c.poke()
	}
}

func (c *outConn) poke() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// wait waits until a session is ready to be served, and reports false when
// the connection has no session left and w should exit.
func (w *connWriter) wait() bool {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.ready.len() == 0 {
		if c.sessions == 0 {
			c.writer = nil
			return false
		}
		c.idle = true
		c.mu.Unlock()
		<-c.signal
		c.mu.Lock()
	}
	return true
}

func (w *connWriter) run() {
	defer w.c.srv.goroutines.Done()
	defer w.c.srv.writers.Delete(w)
	for {
		// A writer started for a retired one first finishes its passes.
		if !w.sendAll() {
			return
		}
		w.parkAll()
		if !w.wait() || !w.collectAll() {
			return
		}
	}
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
	for ; n > 0; n-- {
		ss := c.pop(&c.ready)
		if ss == nil {
			break
		}
		if !ss.claim() {
			continue
		}
		if ss.busy() {
			more, err := ss.turn(w)
			if w.isRetired() {
				w.serveAlone(ss, more, err)
				return false
			}
			ss.release(more, err, false)
			continue
		}
		ready, err := ss.collect()
		if err != nil || !ready {
			more := false
			if err == nil {
				more, err = ss.idle()
			}
			ss.release(more, err, false)
			continue
		}
		c.mu.Lock()
		c.sendq.push(ss)
		c.mu.Unlock()
	}
	return true
}

// sendAll is the second pass: it sends the collected batches, queueing each
// session for parkAll. It reports false if w was retired during a Send; the
// connection's new writer then sends the rest.
func (w *connWriter) sendAll() bool {
	c := w.c
	for ss := c.pop(&c.sendq); ss != nil; ss = c.pop(&c.sendq) {
		err := ss.sendCollected(w)
		c.mu.Lock()
		if w.retired {
			c.mu.Unlock()
			more := err == nil && ss.sent()
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
	}
	return true
}

// isRetired reports whether w was retired during its last Send. It is read
// under the lock check retires it under, after the Send cleared since, so
// the two always agree on whether that Send was retired.
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
		ss.release(ss.sent(), nil, false)
	}
}

// serveAlone goes on serving ss, which a retired w holds, until it has
// nothing left to do at once, starting from the turn that ended with more
// and err.
func (w *connWriter) serveAlone(ss *session, more bool, err error) {
	for ss.release(more, err, true) {
		more, err = ss.turn(w)
	}
}

// check retires w if its current Send has been blocked since before the
// beat now-detachBeats, starting a new writer for the connection's other
// sessions.
func (w *connWriter) check(now int64) {
	if since := w.since.Load(); since == 0 || now-since < detachBeats {
		return
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer != w || w.since.Load() == 0 {
		return
	}
	w.retired = true
	c.start()
	c.srv.detached.Add(1)
}

// connOf returns the outConn of the connection ctx's stream arrived on,
// registering one more session with it. Connections are told apart by
// their addresses: grpc-go gives a handler nothing else that identifies its
// connection but a stats handler, which would cost every Send a clock read
// and an allocation. Two connections that cannot be told apart (in-memory
// listeners, say) share a writer, which is correct, only less parallel.
func (s *Server) connOf(ctx context.Context) *outConn {
	key := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		key = p.Addr.String()
		if p.LocalAddr != nil {
			key += " " + p.LocalAddr.String()
		}
	}
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	c := s.conns[key]
	if c == nil {
		c = &outConn{srv: s, key: key, signal: make(chan struct{}, 1)}
		s.conns[key] = c
	}
	c.register()
	return c
}
