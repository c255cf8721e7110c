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
// A shared writer must not be held up by one stream whose client stopped
// reading: grpc-go's SendMsg blocks once about 64 KiB of that stream wait in
// its queue. Nothing tells when they will drain, so the writer is watched
// instead: when one Send has been blocked for detachBeats beats, the
// sweeper retires that writer and starts another for the connection's other
// streams. The retired goroutine, once its Send returns, goes on serving
// that one stream alone until it has nothing left to send, then exits.

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
	ready    []*session // waiting for a turn, served from head
	head     int
	sessions int // registered sessions
	writer   *connWriter
	idle     bool          // the writer waits for signal
	signal   chan struct{} // capacity 1
}

// connWriter is one goroutine serving an outConn's ready sessions.
type connWriter struct {
	c       *outConn
	since   atomic.Int64 // the server's beat when the current Send began; 0 when not sending
	retired atomic.Bool  // replaced while blocked: finish the current session alone, then exit
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
	if c.sessions == 0 && c.srv.conns[c.key] == c {
		delete(c.srv.conns, c.key)
	}
	wake := c.sessions == 0 && c.idle
	c.idle = c.idle && !wake
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
	c.ready = append(c.ready, ss)
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

// next returns the session to serve next, waiting for one; nil when the
// connection has no session left and w should exit.
func (w *connWriter) next() *session {
	c := w.c
	c.mu.Lock()
	for c.head == len(c.ready) {
		clear(c.ready)
		c.ready, c.head = c.ready[:0], 0
		if c.sessions == 0 {
			c.writer = nil
			c.mu.Unlock()
			return nil
		}
		c.idle = true
		c.mu.Unlock()
		<-c.signal
		c.mu.Lock()
	}
	ss := c.ready[c.head]
	c.ready[c.head] = nil
	c.head++
	c.mu.Unlock()
	return ss
}

func (w *connWriter) run() {
	defer w.c.srv.goroutines.Done()
	defer w.c.srv.writers.Delete(w)
	for !w.retired.Load() {
		ss := w.next()
		if ss == nil {
			return
		}
		w.serve(ss)
	}
}

// serve gives ss a turn, or as many as it needs if w is retired meanwhile.
func (w *connWriter) serve(ss *session) {
	if !ss.claim() {
		return
	}
	for {
		more, err := ss.turn(w)
		if !ss.release(more, err, w.retired.Load()) {
			return
		}
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
	w.retired.Store(true)
	c.start()
	c.srv.detached.Add(1)
	if c.head < len(c.ready) {
		c.idle = false
		c.poke()
	}
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
