package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// connect opens a stream, which the run goroutine then reads. When the
// credential may be refreshed, it fetches the token itself, so as to know
// when the stream's credential expires.
func (s *Subscription) connect() (*conn, error) {
	ctx, cancel := context.WithCancel(s.sctx)
	c := &conn{cancel: cancel, pending: make(map[string]*pending), done: make(chan struct{})}
	if cfg := &s.c.cfg; cfg.refresh {
		token, err := cfg.tokens(ctx)
		if err != nil {
			cancel()
			return nil, tokenSourceError(err)
		}
		ctx = withStreamToken(ctx, token)
		c.expiry = tokenExpiry(token)
	}
	c.ctx = ctx
	stream, first, err := s.c.open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	c.stream, c.session = stream, first.GetSessionId()
	c.refresh = s.startRefresh(c)
	c.stopWake = context.AfterFunc(ctx, s.wake) // a parked receiver reads the stream to its end
	return c, nil
}

// run is the subscription's receiver, the goroutine that owns its
// streams, from c on: it reads the current stream whenever no Next call
// does (see receive) until the stream ends, then opens another with
// backoff and rejoins the rooms on it, until the subscription ends; then it
// closes s.done. When it has nothing to read it returns, parked, and wake
// starts it again on the same stream (see takeTurn). One goroutine
// reconnects and reads, since a subscription reconnects only once its
// stream has ended, and none runs while a Next keeps the stream: each
// goroutine is a stack for the scheduler to keep and the collector to scan.
func (s *Subscription) run(c *conn) {
	var (
		failures int       // streams opened since the last one that worked
		lostAt   time.Time // when the last working stream ended
		cause    error     // why it ended
	)
	for {
		if !s.receive(c) {
			return // parked: c is ready, so the state above starts again once it ends
		}
		err := s.ended(c)
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		if end := s.endErr(err, c.fatal); end != nil {
			s.finish(end)
			return
		}
		if c.ready {
			failures, lostAt = 0, time.Now()
			cause = &opError{op: "subscription stream ended", cause: err, also: sentinels(err, kindCall)}
			s.mu.Lock()
			s.push(&Event{Disconnected: &Disconnected{Err: cause}})
			s.mu.Unlock()
			notify(s.arrived)
		}
		for {
			failures++
			if !s.pause(s.c.cfg.backoff.delay(failures)) {
				s.finish(s.endErr(nil, nil))
				return
			}
			next, err := s.connect()
			if err == nil {
				c = next
				break
			}
			if end := s.endErr(err, nil); end != nil {
				s.finish(end)
				return
			}
		}
		s.rejoin(c, cause, failures, lostAt)
	}
}

// ended returns why c ended, once c.done is closed and nothing of c's runs
// any more.
func (s *Subscription) ended(c *conn) error {
	c.stopWake()
	c.cancel()
	refreshErr := c.refresh.stop()
	s.stopResends(c)
	c.sending.Wait() // the rejoins' senders, which the cancel ended
	return streamErr(c, refreshErr)
}

// endErr returns why the subscription must end after a stream ended with
// err, or nil if it should reconnect. fatal is a rejoin's permanent error.
func (s *Subscription) endErr(err, fatal error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case s.ctx.Err() != nil:
		return contextError(s.ctx, "subscription ended")
	case fatal != nil:
		return fatal
	case err != nil && permanent(err):
		return &opError{op: "subscription ended", cause: err, also: sentinels(err, kindCall)}
	}
	return nil
}

// finish records why the subscription ended, and closes s.done: the
// receiver's last act.
func (s *Subscription) finish(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	notify(s.arrived)
	close(s.done)
}

// pause waits for d, and reports false if the subscription ends first.
func (s *Subscription) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.sctx.Done():
		return false
	}
}

// rejoin joins every room of the subscription on the new stream c, from
// the position of the last message received in each. Whoever reads the
// last reply queues the Reconnected event.
func (s *Subscription) rejoin(c *conn, cause error, attempts int, lostAt time.Time) {
	s.mu.Lock()
	s.conn, s.session = c, c.session
	c.lostAt = lostAt
	c.rateWait.giveUpAt = time.Now().Add(rejoinRetryFor)
	c.reconnect = &Reconnected{Session: c.session, Cause: cause, Attempts: attempts}
	reqs := make([]*roomcastv1.SubscribeRequest, 0, len(s.order))
	for _, name := range s.order {
		st := s.rooms[name]
		reqs = append(reqs, s.register(c, &pending{kind: cmdJoin, room: st, rejoin: true}, joinCommand(st)))
	}
	c.rejoining = len(reqs)
	if c.rejoining == 0 {
		s.rejoinedAll(c)
	}
	s.mu.Unlock()
	notify(s.arrived)
	if len(reqs) == 0 {
		return
	}
	// Sent by a goroutine of their own while run reads the replies: many
	// joins could fill the stream's send window while the server waits for
	// its replies and the messages they recover to be read. ended waits for
	// it once the stream has ended.
	c.sending.Add(1)
	go func() {
		defer c.sending.Done()
		for _, req := range reqs {
			if c.send(req) != nil {
				return // the stream is gone; run learns why from reading it
			}
		}
	}()
}

// streamErr is why c ended. Read after c.done.
func streamErr(c *conn, refreshErr error) error {
	err := c.err
	switch {
	case c.retry != nil:
		err = c.retry
	case errors.Is(err, io.EOF):
		err = status.Error(codes.Unavailable, "the server ended the stream without a status")
	}
	if refreshErr != nil && status.Code(err) == codes.Unauthenticated {
		err = fmt.Errorf("%w (the last credential refresh failed: %v)", err, refreshErr)
	}
	return err
}
