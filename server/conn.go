package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/peer"
)

// outConn is one client connection's side of delivery: the sessions ready
// to be served, and the writer serving them (see writer.go).
type outConn struct {
	srv *Server
	key string // in srv.conns

	mu       sync.Mutex
	ready    queue       // queued sessions, waiting for a turn
	sendq    queue       // held sessions whose batch was collected, waiting to be sent
	parkq    queue       // held sessions that were sent, waiting to be parked and released
	sessions int         // registered sessions
	writer   *connWriter // the current writer; nil when none runs (none left, or it exited idle)
	waiting  bool        // the current writer waits on its signal: whoever gives it work pokes it
	pokedAt  int64       // when the waiting writer was last poked, on the server's clock
	pacer    passPacer   // how long the current writer holds before a pass (pacing.go)
}

// queue is a first-in first-out list of sessions. Caller holds its
// outConn's mu for every method.
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

// connOf returns the outConn of the connection ctx's stream arrived on,
// registering one more session with it. Connections are told apart by
// their addresses: grpc-go gives a handler nothing else that identifies its
// connection but a stats handler, which would cost every Send a clock read
// and an allocation. Two connections that cannot be told apart (in-memory
// listeners, say) share a writer, which is correct, only less parallel.
func (s *Server) connOf(ctx context.Context) *outConn {
	var buf [128]byte
	key := buf[:0]
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		key = appendConnKey(key, p.Addr, p.LocalAddr)
	}
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	c := s.conns[string(key)]
	if c == nil { // the connection's first stream: only it builds the key
		c = &outConn{srv: s, key: string(key), pacer: passPacer{max: int64(s.cfg.maxWriteHold)}}
		s.conns[c.key] = c
	}
	c.register()
	return c
}

// register counts one more session, starting a writer if none runs. Caller
// holds srv.connsMu, so an outConn is never found in srv.conns after its last
// session unregistered.
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
	var wake *connWriter
	if c.sessions == 0 {
		if c.srv.conns[c.key] == c {
			delete(c.srv.conns, c.key)
		}
		wake = c.waiter() // so that it exits
	}
	c.mu.Unlock()
	wake.poke()
}

// start runs a new current writer for the connection. Caller holds mu.
func (c *outConn) start() {
	w := &connWriter{c: c, signal: make(chan struct{}, 1)}
	c.writer = w
	c.srv.goroutines.Add(1)
	c.srv.writers.Store(w, struct{}{})
	go w.run()
}

// push queues ss, which the caller moved to queued, for a turn, starting a
// writer if the last one exited idle.
func (c *outConn) push(ss *session) {
	c.mu.Lock()
	c.ready.push(ss)
	if c.writer == nil {
		c.start()
		c.mu.Unlock()
		return
	}
	wake := c.waiter()
	c.mu.Unlock()
	wake.poke()
}

// waiter returns the current writer if it waits, for the caller to poke
// once it let go of mu, and counts it as no longer waiting; nil if none
// waits. Caller holds mu.
func (c *outConn) waiter() *connWriter {
	if !c.waiting {
		return nil
	}
	c.waiting = false
	c.pokedAt = c.srv.now()
	return c.writer
}

// poke wakes w, which waited; nil does nothing. It never blocks: w's
// signal holds one poke, and a writer looks at its lists before it waits
// again. Each writer has its own signal, so a poke meant for a writer that
// was stopped idle cannot be taken by its successor.
func (w *connWriter) poke() {
	if w == nil {
		return
	}
	select {
	case w.signal <- struct{}{}:
	default:
	}
}
