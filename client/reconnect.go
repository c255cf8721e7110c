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

// connect opens a stream and starts its receiver. When the credential may
// be refreshed, it fetches the token itself, so as to know when the
// stream's credential expires.
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
	go s.receive(c)
	return c, nil
}

// run owns the subscription's streams, starting with first: it waits for
// the current stream to end, refreshing its credential meanwhile, then
// opens another with backoff and rejoins the rooms on it, until the
// subscription ends. It closes s.done last.
func (s *Subscription) run(first *conn) {
	defer close(s.done)
	var (
		c        = first
		failures int       // streams opened since the last one that worked
		lostAt   time.Time // when the last working stream ended
		cause    error     // why it ended
	)
	for {
		err := s.watch(c) // returns once c's receiver has
		c.cancel()
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

// finish records why the subscription ended.
func (s *Subscription) finish(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	notify(s.arrived)
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
// the position of the last message received in each. The receiver queues
// the Reconnected event once every reply is in.
func (s *Subscription) rejoin(c *conn, cause error, attempts int, lostAt time.Time) {
	s.mu.Lock()
	s.conn, s.session = c, c.session
	c.lostAt = lostAt
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
	notify(s.space)
	notify(s.arrived)
	for _, req := range reqs {
		if c.send(req) != nil {
			return // the receiver learns why
		}
	}
}

// watch waits for c's receiver to return, refreshing the stream's
// credential meanwhile, and returns why the stream ended.
func (s *Subscription) watch(c *conn) error {
	var (
		timer      = time.NewTimer(time.Hour)
		tick       <-chan time.Time
		refreshErr error // of the last refresh, if it failed
	)
	timer.Stop()
	defer timer.Stop()
	if d, ok := refreshDelay(c.expiry); ok && s.c.cfg.refresh {
		timer.Reset(d)
		tick = timer.C
	}
	for {
		select {
		case <-c.done:
			return streamErr(c, refreshErr)
		case <-tick:
			d, ok, err := s.refresh(c)
			refreshErr = err
			if ok {
				timer.Reset(d)
			} else {
				tick = nil
			}
		}
	}
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

// refresh sends a new token on c and returns when to refresh next, false
// for never, and the error if the refresh failed.
func (s *Subscription) refresh(c *conn) (time.Duration, bool, error) {
	const op = "refresh the credential"
	token, err := s.c.cfg.tokens(c.ctx)
	if err == nil {
		p := &pending{kind: cmdRefresh, reply: make(chan *roomcastv1.CommandReply, 1)}
		s.mu.Lock()
		req := s.register(c, p, &roomcastv1.SubscribeRequest{
			Command: &roomcastv1.SubscribeRequest_Refresh{Refresh: &roomcastv1.RefreshCommand{Token: token}},
		})
		s.mu.Unlock()
		notify(s.space)
		if c.send(req) != nil {
			return 0, false, nil // the stream is gone
		}
		select {
		case r := <-p.reply:
			if e := r.GetError(); e == nil {
				c.expiry = time.Time{} // unset: it does not expire
				if t := r.GetRefresh().GetExpireTime(); t != nil {
					c.expiry = t.AsTime()
				}
				d, ok := refreshDelay(c.expiry)
				return d, ok, nil
			}
			err = replyError(op, r.GetError())
			if status.Code(err) == codes.FailedPrecondition {
				return 0, false, nil // the server does not authenticate
			}
		case <-c.done:
			return 0, false, nil
		}
	} else {
		err = &opError{op: op, cause: err}
	}
	d, ok := refreshDelay(c.expiry)
	return d, ok, err
}
