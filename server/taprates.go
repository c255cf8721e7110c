package server

import (
	"context"

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
// context says the tap took its token takes none in its handler; other
// calls (PublishStream's publishes, calls in this process) take theirs
// there.

// Reasons of the tap's rate refusals, as the reason label.
const (
	reasonPublishRate = "publish_rate" // the credential's publish bucket is empty
	reasonReadRate    = "read_rate"    // the credential's History and Presence bucket is empty
)

// tookToken marks the context of a call whose token the tap took, or whose
// byte rate it applied: its value is the tapChecks.
type tookToken struct{}

// tapChecks are the checks of a publish the tap made, which its handler
// then skips.
type tapChecks uint8

const (
	tokenTaken   tapChecks = 1 << iota // its token of the publish or read rate
	bytesChecked                       // its credential owed no bytes of its publish byte rate
)

// takeRateToken takes the token of a unary Publish, History or Presence
// call from its credential's rate and returns the call's context saying
// so, and the checks already made, or the error the handler would have refused it with, the reason to
// count it under, and how it counts toward its connection's pause: a
// refusal whose advice was crowded (see auth.Decision) does, as callers
// that wait out their advice leave the slots free; another does not. Other
// calls pass as they are.
func (s *Server) takeRateToken(ctx context.Context, method string, checks tapChecks) (context.Context, string, refusal, error) {
	var take func(*auth.Identity) (int, error)
	var reason string
	switch method {
	case roomcastv1.BrokerService_Publish_FullMethodName:
		if s.access.limitsPublishes() {
			take, reason = s.access.takePublish, reasonPublishRate
		}
	case roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName:
		if s.access.reads != nil {
			take, reason = s.access.takeRead, reasonReadRate
		}
	}
	if take != nil {
		crowded, err := take(s.access.callIdentity(ctx))
		if err != nil {
			r := refusal{}
			if crowded > 0 {
				r = refusal{kind: crowdedRefusal, credCrowded: crowded}
			}
			return ctx, reason, r, err
		}
		checks |= tokenTaken
	}
	if checks == 0 {
		return ctx, "", refusal{}, nil
	}
	return context.WithValue(ctx, tookToken{}, checks), "", refusal{}, nil
}

// tapMade returns the checks the tap made of ctx's call.
func tapMade(ctx context.Context) tapChecks {
	c, _ := ctx.Value(tookToken{}).(tapChecks)
	return c
}

// tapTookToken reports whether the tap took the token of ctx's call.
func tapTookToken(ctx context.Context) bool { return tapMade(ctx)&tokenTaken != 0 }

// publishToken applies id's publish rate to a publish of ctx's call,
// unless the tap did so.
func (s *Server) publishToken(ctx context.Context, id *auth.Identity) error {
	if tapTookToken(ctx) {
		return nil
	}
	return s.access.allowPublish(id)
}
