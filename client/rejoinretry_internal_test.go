package client

import (
	"errors"
	"testing"
)

// Once a stream is given up (a rejoin failed, or it staged too much), no
// queued rejoin is sent again on it: the timer that would send one is not
// armed.
func TestNoResendOnAStreamGivenUp(t *testing.T) {
	for _, given := range []string{"retry", "fatal"} {
		t.Run(given, func(t *testing.T) {
			s := &Subscription{rooms: make(map[string]*roomState)}
			c := &conn{pending: make(map[string]*pending)}
			c.rateWait.rooms = []*roomState{{name: "r", joined: true}}
			if given == "retry" {
				c.retry = errors.New("refused")
			} else {
				c.fatal = errors.New("denied")
			}
			s.mu.Lock()
			s.resendNext(c, nil)
			timer := c.rateWait.timer
			s.mu.Unlock()
			if timer != nil {
				if timer.Stop() {
					c.sending.Done()
				}
				t.Fatal("a resend was armed on a stream given up")
			}
		})
	}
}
