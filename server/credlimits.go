package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Limits kept per credential, beside the rates of access.go: what one
// credential may hold open. A credential is
// a subject (and how it was authenticated); anonymous callers are one per
// client address (see access.identity).

// appendCredentialKey appends the key the limits of id are kept under to
// b: a key a map can be searched by without building its string.
func appendCredentialKey(b []byte, id *auth.Identity) []byte {
	return append(append(append(b, id.Method...), ':'), id.Subject...)
}

// streamCounts counts the streams of one kind each credential has open:
// Subscribe streams (Watch calls included), or PublishStream streams. It is
// safe for concurrent use.
type streamCounts struct {
	max     int
	refused error // the refusal past max, built once: it is the same for every stream
	mu      sync.Mutex
	n       map[string]*credStreams // only credentials with streams open
}

// credStreams is one credential's count. Its key and release are made
// with it, as its first stream opens, so that the credential's further
// streams allocate nothing here (attack (d) opens a thousand at once).
type credStreams struct {
	key     string
	n       int // guarded by streamCounts.mu
	release func()
}

// newStreamCounts counts streams against max, refusing past it with
// refused.
func newStreamCounts(max int, refused error) *streamCounts {
	return &streamCounts{max: max, refused: refused, n: make(map[string]*credStreams)}
}

// newSubscribeCounts counts Subscribe streams and Watch calls.
func newSubscribeCounts(max int) *streamCounts {
	return newStreamCounts(max, status.Errorf(codes.ResourceExhausted, "this credential has %d Subscribe streams open, its limit; close one, or subscribe to more rooms on one stream", max))
}

// newPublishStreamCounts counts PublishStream streams.
func newPublishStreamCounts(max int) *streamCounts {
	return newStreamCounts(max, status.Errorf(codes.ResourceExhausted, "this credential has %d PublishStream streams open, its limit; close one, or publish more on one stream", max))
}

// open counts one more stream for id and returns its release, to be called
// once, or an error if id has its limit open already.
func (c *streamCounts) open(id *auth.Identity) (release func(), err error) {
	var buf [128]byte
	b := appendCredentialKey(buf[:0], id)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.n[string(b)]
	if e.count() >= c.max {
		return nil, c.refused
	}
	if e == nil {
		e = &credStreams{key: string(b)}
		e.release = func() { c.closed(e) }
		c.n[e.key] = e
	}
	e.n++
	return e.release, nil
}

// closed counts one of e's streams closed, forgetting e with its last.
func (c *streamCounts) closed(e *credStreams) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.n--; e.n == 0 {
		delete(c.n, e.key)
	}
}

// count is e's streams open, 0 for none (nil). Caller holds the mu.
func (e *credStreams) count() int {
	if e == nil {
		return 0
	}
	return e.n
}

// full reports whether id has its limit of streams open, so that a new one
// would be refused. The tap asks it first (see fullStreams), cheaply;
// open, which a stream still passes, decides.
func (c *streamCounts) full(id *auth.Identity) bool {
	var buf [128]byte
	b := appendCredentialKey(buf[:0], id)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[string(b)].count() >= c.max
}

// fullStreams refuses a Subscribe stream, Watch call or PublishStream in
// the tap, before grpc-go starts its handler, when its credential has its
// limit of such streams open already: a client that opens streams past its
// limit in a loop is refused each for the cost of its headers, rather than
// of a handler goroutine and the interceptors. It is refused as
// admitStream would refuse it, which still counts the streams that pass.
func (s *Server) fullStreams(method string, id *auth.Identity) error {
	c := s.access.countsOf(method)
	if c == nil || !c.full(id) {
		return nil
	}
	return c.refused
}

// countsOf returns the counts that calls to method count against: their
// credential's Subscribe streams (Subscribe streams and Watch calls) or its
// PublishStream streams; nil for other methods. Each open stream may hold a
// receive window of requests the server has not read yet (see
// WithReceiveWindows), so both are bounded.
func (a *access) countsOf(method string) *streamCounts {
	switch method {
	case roomcastv1.BrokerService_Subscribe_FullMethodName, roomcastv1.BrokerService_Watch_FullMethodName:
		return a.streams
	case roomcastv1.BrokerService_PublishStream_FullMethodName:
		return a.publishStreams
	}
	return nil
}

// admitStream keeps each credential within its streams of c's kind: it
// counts one more open for id, the identity of ctx's stream, and returns
// what counts it closed. It runs after authentication (see
// streamcalls.go), so the identity is known.
func (s *Server) admitStream(ctx context.Context, c *streamCounts, id *auth.Identity) (release func(), err error) {
	release, err = c.open(id)
	if err != nil {
		s.guard.refusedCall(ctx)
		return nil, err
	}
	return release, nil
}

// tapLimits are the limits the tap applies to an authenticated call, from
// its credential alone: the streams it has open, the bytes it owes of its
// publish or read byte rate, and for a unary call the rate it takes a token of (see
// taprates.go). The caller's identity is resolved once, and only for a call
// that has a limit to check (tapChecks); a unary call that passes goes on
// with a tappedCall, which tells its handler so (see tapcall.go). A refusal
// is counted and logged here, as no interceptor sees it; one past the
// streams, or a PublishStream or a History or Presence call owing bytes, is
// abusive (see tapLimit), one past a rate is crowded or uncounted, and a
// unary Publish owing bytes is a crowdedBodyRefusal or uncounted
// (publishadvice.go).
func (s *Server) tapLimits(ctx context.Context, method string) (context.Context, refusal, error) {
	if !s.tapChecks(method) {
		return ctx, refusal{}, nil
	}
	id := s.access.callIdentity(ctx)
	if err := s.fullStreams(method, id); err != nil {
		s.access.log.early(ctx, method, reasonStreamLimit, err)
		return nil, abusive, err
	}
	if method == roomcastv1.BrokerService_Publish_FullMethodName {
		if r, err := s.owingUnaryPublish(id); err != nil {
			s.access.log.early(ctx, method, reasonPublishBytes, err)
			return nil, r, err
		}
	} else if err := s.owingPublishes(method, id); err != nil {
		s.access.log.early(ctx, method, reasonPublishBytes, err)
		return nil, abusive, err
	}
	if err := s.owingReads(method, id); err != nil {
		s.access.log.early(ctx, method, reasonReadBytes, err)
		return nil, abusive, err
	}
	if reason, r, err := s.takeRateToken(method, id); err != nil {
		s.access.log.early(ctx, method, reason, err)
		return nil, r, err
	}
	if tapsUnary(method) {
		return &tappedCall{Context: ctx, id: id, method: method}, refusal{}, nil
	}
	return ctx, refusal{}, nil
}
