package server

import "context"

// WithTurnHook is withTurnHook for the black-box tests.
var WithTurnHook = withTurnHook

// WithPublishHook is withPublishHook for the black-box tests.
var WithPublishHook = withPublishHook

// WithTapHook is withTapHook for the black-box tests.
var WithTapHook = withTapHook

// ClientKey is clientKey, for tests of addresses no test can connect from.
var ClientKey = clientKey

// JSONFragmentsRendered reports how many batch entries s rendered as JSON
// for web Watch calls.
func JSONFragmentsRendered(s *Server) uint64 { return s.jsonFragments.Encodes() }

// PeerAddr is peerAddr.
var PeerAddr = peerAddr

// WithWriterIdlePeriod is withWriterIdlePeriod for the black-box tests.
var WithWriterIdlePeriod = withWriterIdlePeriod

// WithReadPauseHook is withReadPauseHook for the black-box tests.
var WithReadPauseHook = withReadPauseHook

// WithTapPauseHook is withTapPauseHook for the black-box tests.
var WithTapPauseHook = withTapPauseHook

// WithCrowdedAllowance is withCrowdedAllowance for the black-box tests.
var WithCrowdedAllowance = withCrowdedAllowance

// UnaryPerSecondFactor is unaryPerSecondFactor for the black-box tests.
const UnaryPerSecondFactor = unaryPerSecondFactor

// WithCrowdedBodyAllowance is withCrowdedBodyAllowance for the black-box
// tests.
var WithCrowdedBodyAllowance = withCrowdedBodyAllowance

// WithHeldTimers is withHeldTimers for the black-box tests.
var WithHeldTimers = withHeldTimers

// WithPublishPauseHook is withPublishPauseHook for the black-box tests.
var WithPublishPauseHook = withPublishPauseHook

// WithPenaltyClock is withPenaltyClock for the black-box tests.
var WithPenaltyClock = withPenaltyClock

// DeferredRefusals is how many calls the tap of s refused and let through,
// for their far deadlines, to be refused by the server's own code.
func DeferredRefusals(s *Server) uint64 { return s.deferred.Load() }

// FrameCost is frameCost: what the scanner counts a DATA frame as holding.
var FrameCost = frameCost

// WithHandshakeTimeout is withHandshakeTimeout for the black-box tests.
var WithHandshakeTimeout = withHandshakeTimeout

// HoldLargeTurn takes the turn of the large requests of s, as a request
// being decoded does, and returns the function that ends it.
func HoldLargeTurn(s *Server) (release func(), err error) {
	return s.largeTurns.take(context.Background(), "the test", 0)
}

// WithDecodeHook is withDecodeHook for the black-box tests.
var WithDecodeHook = withDecodeHook
