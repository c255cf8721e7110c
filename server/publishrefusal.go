package server

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A PublishStream's refused publishes slow its reader down, as a Subscribe
// stream's refused commands do theirs (see cmdrate.go): after a request the
// handler answered with a refusal, the reader pauses before it reads the
// next request, firstRefusalPause doubled for each earlier such request
// within the second, at most maxRefusalPause. The publisher's requests then
// wait in HTTP/2 flow control, where they cost the server nothing, rather
// than being read, decoded and answered as fast as it sends them: a
// publisher past its rate, flooding one stream with batches, is read about
// ten times a second (issue #13). Unlike a Subscribe stream's, the count
// begins again each second rather than running on while refusals come (see
// streakQuiet): a bulk publisher held at its rate is refused now and then
// for as long as it publishes, and would be read once a second.
//
// The handler, which knows the answers, sets the pause; the reader, which
// may be blocked in RecvMsg meanwhile, takes it before its next read. The
// reader reads ahead of the handler by at most the window, so a refused
// request is followed by at most a window's worth of publishes that the
// reader had taken before the pause was set.

// publishRefusals counts the requests of one PublishStream answered with a
// refusal within the second, and passes the pause they earn to the reader.
// Only the handler calls refused; only the reader calls take.
type publishRefusals struct {
	pause atomic.Int64 // nanoseconds the reader pauses before its next read; 0: none

	counted refusals // the handler's own
}

// refused counts one more request answered with a refusal and sets the
// reader's pause for it.
func (p *publishRefusals) refused() {
	p.pause.Store(int64(refusalPause(p.counted.add(time.Now()))))
}

// take returns the pause the reader owes before its next read, and clears
// it.
func (p *publishRefusals) take() time.Duration { return time.Duration(p.pause.Swap(0)) }

// isRefusal reports whether a publish answered with code was refused by a
// limit or a grant, or as bad input: what a flooding publisher gets.
func isRefusal(code codes.Code) bool {
	return code == codes.ResourceExhausted || code == codes.PermissionDenied || code == codes.InvalidArgument
}

// hasRefusal reports whether any of resp's answers is a refusal.
func hasRefusal(resp *roomcastv1.PublishStreamResponse) bool {
	if e := resp.GetError(); e != nil && isRefusal(codes.Code(e.GetCode())) {
		return true
	}
	for _, r := range resp.GetBatch() {
		if e := r.GetError(); e != nil && isRefusal(codes.Code(e.GetCode())) {
			return true
		}
	}
	return false
}

// pauseReading waits the pause the handler set, if any, before the reader
// reads on; false if the stream ended meanwhile.
func (r *publishReader) pauseReading(s *Server) bool {
	d := r.refusals.take()
	if d <= 0 {
		return true
	}
	if hook := s.cfg.publishPauseHook; hook != nil {
		hook(d)
	}
	return pause(r.stream.Context().Done(), d)
}

// sharedRefusal returns the answer to give the rest of e's batch, shared,
// if e refused one of its publishes for its credential's publish rate or
// byte rate (the refusals that carry a retry delay); nil otherwise. The
// rest would be refused too, but for the odd publish the bucket refilled
// for while the batch was sequenced, so it gets the same answer without
// taking the limiters' locks or building a status for each: a batch of 256
// publishes past the rate costs one refusal, not 256.
func sharedRefusal(e *roomcastv1.Error) *roomcastv1.PublishStreamResult_Error {
	if e == nil || e.GetRetryAfter() == nil || codes.Code(e.GetCode()) != codes.ResourceExhausted {
		return nil
	}
	return &roomcastv1.PublishStreamResult_Error{Error: e}
}
