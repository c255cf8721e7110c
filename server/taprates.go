package server

import (
	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A unary call's token of its credential's rate is taken in the tap, from
// its headers, and a call past the rate is refused there: refused by its
// handler, as before, it cost a handler goroutine, reading and decoding its
// request, and the interceptors, about as much as a call that is served.
// Under a flood of publishes, or of History and Presence calls, most calls
// are past the rate (17,000 refused a second against 10,000 served in
// attack (i) of issue #13), and an execution trace showed the handlers
// dispatched for them making up most of the time goroutines waited to run.
// A refusal counts toward its connection's pause only once its rate's
// advice is crowded (see tapLimit): an honest client that waits out each
// RetryInfo is refused about once per call it makes, but the limiter
// spreads its waiters one token apart, and they fill its slots only when
// more of them wait at once than the rate serves in its longest advice
// (the larger of its burst and a second's tokens). The token is taken
// rather than only looked at: with dozens of calls in flight, all those
// that found a token left would pass the tap and all but one be refused by
// their handlers. A call whose
// context says the tap took its token (a tappedCall, see tapcall.go) takes
// none in its handler; other calls (PublishStream's publishes, calls in
// this process) take theirs there.

// Reasons of the tap's rate refusals, as the reason label.
const (
	reasonPublishRate = "publish_rate" // the credential's publish bucket is empty
	reasonReadRate    = "read_rate"    // the credential's History and Presence bucket is empty
)

// takeRateToken takes the token of a unary Publish, History or Presence
// call of id from its credential's rate, or returns the error the handler
// would have refused it with, the reason to count it under, and how it
// counts toward its connection's pause: a refusal whose advice was crowded
// (see auth.Decision) does, as callers that wait out their advice leave
// the slots free; another does not. Other calls pass as they are. A call
// that passes goes on with a tappedCall (see tapLimits), which tells its
// handler the token is taken.
func (s *Server) takeRateToken(method string, id *auth.Identity) (string, refusal, error) {
	var take func(*auth.Identity) (int, error)
	var reason string
	switch method {
	case roomcastv1.BrokerService_Publish_FullMethodName:
		if !s.access.limitsPublishes() {
			return "", refusal{}, nil
		}
		take, reason = s.access.takePublish, reasonPublishRate
	case roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName:
		if s.access.reads == nil {
			return "", refusal{}, nil
		}
		take, reason = s.access.takeRead, reasonReadRate
	default:
		return "", refusal{}, nil
	}
	if crowded, err := take(id); err != nil {
		r := refusal{}
		if crowded > 0 {
			r = refusal{kind: crowdedRefusal, credCrowded: crowded}
			if reason == reasonPublishRate {
				r.credAllowance = s.access.publishCrowdedAllowance(id)
			}
		}
		return reason, r, err
	}
	return "", refusal{}, nil
}

// publishToken applies id's publish rate to a publish, but for one the tap
// let through (tapped: see tappedCall), whose token the tap took.
func (s *Server) publishToken(id *auth.Identity, tapped bool) error {
	if tapped {
		return nil
	}
	return s.access.allowPublish(id) // a PublishStream's publishes and calls in this process pass no tap
}
