package server

import (
	"context"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// The tap checks a unary Publish's, History's or Presence's limits from its
// caller's identity alone (credlimits.go, taprates.go), and its handler
// needs that identity again: a client address formatted and looked up
// (callerCache). So the tap hands the call on with a context that holds
// the identity it checked them for and says it took the call's token of
// its rate (tappedCall); the handler takes both as they are. The byte
// debt the handler checks again, once the request is read: the tap saw
// only the headers, and a client may send many calls' headers before any
// body, all passing the tap before the first is charged (a Publish is then
// refused only past a burst of debt, a History or Presence call past none;
// see reservePublishBytes). What the handler alone can check (the
// message's size, the grants for its room, the sessions it names) it
// checks, as before; a publish's bytes are reserved before it is published
// and given back if it is refused.

// tappedKey keys a call's *tappedCall.
type tappedKey struct{}

// tappedCall is the context of a unary call whose limits the tap checked
// and passed: its credential owed no bytes of its byte rate and the tap
// took its token of its rate (each if the server has that rate), for
// method alone. It is one
// allocation, where context.WithValue would box what it holds in a second;
// it replaces none of the call's other values.
type tappedCall struct {
	context.Context
	id     *auth.Identity // the caller, as callIdentity resolved it for the tap
	method string         // the call's, which the tap checked it for
}

// Value returns c itself for tappedKey, else what its parent holds.
func (c *tappedCall) Value(key any) any {
	if key == (tappedKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// tappedOf returns the tappedCall of ctx's call, or nil: the tap did not
// check its limits (none apply to it, or it was not made over gRPC).
func tappedOf(ctx context.Context) *tappedCall {
	c, _ := ctx.Value(tappedKey{}).(*tappedCall)
	return c
}

// tapChecks reports whether the tap checks any limit of a call to method,
// and so needs its caller's identity: the stream limits of Subscribe
// streams and Watch calls and of PublishStream streams (always), the
// publish byte rate of publishes, and the read rates of History and
// Presence calls, each only if the server has it. Other calls pass the tap
// untouched.
func (s *Server) tapChecks(method string) bool {
	switch method {
	case roomcastv1.BrokerService_Subscribe_FullMethodName, roomcastv1.BrokerService_Watch_FullMethodName:
		return true
	case roomcastv1.BrokerService_Publish_FullMethodName:
		return s.access.checksPublishes()
	case roomcastv1.BrokerService_PublishStream_FullMethodName:
		return true // its credential's PublishStream streams, and bytes owed
	case roomcastv1.BrokerService_History_FullMethodName, roomcastv1.BrokerService_Presence_FullMethodName:
		return s.access.checksReads()
	}
	return false
}

// tapsUnary reports whether method is a unary call whose limits, once the
// tap checked them, its handler leaves to the tap (see tappedCall).
func tapsUnary(method string) bool {
	return method == roomcastv1.BrokerService_Publish_FullMethodName || isRead(method)
}

// checksPublishes reports whether a publish has a limit of its
// credential's to be checked before it is read: a byte rate or a rate.
func (a *access) checksPublishes() bool { return a.publishBytes != nil || a.limitsPublishes() }

// checksReads reports whether a History or Presence call has a limit of
// its credential's to be checked before it is read: a byte rate or a rate.
func (a *access) checksReads() bool { return a.readBytes != nil || a.reads != nil }

// tappedCaller returns the identity of the unary call of ctx to method
// and whether the tap checked and passed its limits, with checks saying
// whether the server's tap checks calls of that method: the tap's identity
// if it did, else callIdentity's. A tappedCall of another method's (a
// context reused for a call in this process) does not count.
func (s *Server) tappedCaller(ctx context.Context, method string, checks bool) (*auth.Identity, bool) {
	if checks {
		if c := tappedOf(ctx); c != nil && c.method == method {
			return c.id, true
		}
	}
	return s.access.callIdentity(ctx), false
}
