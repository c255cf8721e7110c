package client

import (
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// refresher refreshes a stream's credential before it expires, on a
// goroutine of the stream's timer (time.AfterFunc) that lives only while a
// refresh runs: most of a stream's life is spent waiting for the next one,
// which costs the subscription no goroutine.
type refresher struct {
	s *Subscription
	c *conn

	mu      sync.Mutex
	timer   *time.Timer // nil if the credential is not refreshed
	stopped bool        // stop was called: no refresh starts any more
	err     error       // of the last refresh, if it failed
	running sync.WaitGroup
}

// startRefresh schedules the refreshes of c's credential, if it has one
// to refresh. Stop the refresher once c has ended.
func (s *Subscription) startRefresh(c *conn) *refresher {
	r := &refresher{s: s, c: c}
	if d, ok := refreshDelay(c.expiry); ok && s.c.cfg.refresh {
		r.mu.Lock() // the timer may fire before it is stored
		r.timer = time.AfterFunc(d, r.fire)
		r.mu.Unlock()
	}
	return r
}

// fire refreshes the credential and schedules the next refresh.
func (r *refresher) fire() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.running.Add(1) // before stop's Wait, which stopped orders after this
	r.mu.Unlock()
	defer r.running.Done()
	d, ok, err := r.s.refresh(r.c)
	r.mu.Lock()
	r.err = err
	if ok && !r.stopped {
		r.timer.Reset(d)
	}
	r.mu.Unlock()
}

// stop cancels the refreshes to come, waits for one that runs (which
// returns once c is done), and returns the error of the last one, if it
// failed. Call it after c.done is closed.
func (r *refresher) stop() error {
	r.mu.Lock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.running.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
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
		s.wake()
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
