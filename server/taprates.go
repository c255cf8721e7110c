package server

import (
	"context"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A unary call past its credential's rate is refused in the tap, from its
// headers, when the bucket it would take a token from is empty already:
// refused by its handler, as before, it cost a handler goroutine, reading
// and decoding its request, and the interceptors, about as much as a call
// that is served. Under a flood of publishes, or of History and Presence
// calls, most calls are past the rate (17,000 refused a second against
// 10,000 served in attack (i) of issue #13), and an execution trace showed
// the handlers dispatched for them making up most of the time goroutines
// waited to run. Refused in the tap, they count as the connection's refused
// calls, so a connection that keeps sending past its rate is paused (see
// refusedInTap). The handler still takes the token, and decides.

// Reasons of the tap's rate refusals, as the reason label.
const (
	reasonPublishRate = "publish_rate" // the credential's publish bucket is empty
	reasonReadRate    = "read_rate"    // the credential's History and Presence bucket is empty
)

// pastRate refuses a unary Publish, History or Presence call whose
// credential has no token left of the rate the handler would take one of,
// with the error the handler would give and the reason to count it under.
func (s *Server) pastRate(ctx context.Context, method string) (reason string, err error) {
	var l *auth.RateLimiter
	switch method {
	case roomcastv1.BrokerService_Publish_FullMethodName:
		l, reason = s.access.publish, reasonPublishRate
	case roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName:
		l, reason = s.access.reads, reasonReadRate
	}
	if l == nil {
		return "", nil
	}
	wait := l.Wait(s.access.callIdentity(ctx))
	if wait <= 0 {
		return "", nil
	}
	if reason == reasonPublishRate {
		return reason, auth.RateLimitError(wait)
	}
	return reason, readRateError(wait)
}
