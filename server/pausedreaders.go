package server

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
)

// A Subscribe stream's reader that pauses after a refused command (see
// cmdrate.go) leaves the stream's commands unread, and grpc-go holds what
// the client sends meanwhile, up to the stream's receive window: a full
// window of tiny commands takes about twice its bytes of heap (grpc-go
// 1.85 keeps each small frame in an allocation of its own until a run of
// them is merged). So the streams that may pause at once are counted, over
// the server and per credential: past either count a stream that would
// pause ends with RESOURCE_EXHAUSTED instead, and what it held is freed.
// Paused readers then hold at most max windows in all and perCred of one
// credential (and readers within behindGrace, below, a window each), where
// before a credential's thousand flooding streams held a window each (0.5
// GB), and a server's hundred thousand streams fifty times that. Past the
// server's count, other credentials' streams are ended at their next
// refused command too: the count bounds memory, not one tenant's share of
// it.
//
// A reader also stops reading while its turns are behind: it hands each
// command on to them in a queue of commandsPerWake, and a turn that cannot
// send (the client reads none of its replies and messages, so the
// stream's writes wait in flow control) takes none until the write
// timeout cuts the stream off. A reader that has waited behindGrace for a
// place in that queue, far longer than a turn takes, counts as paused too.
//
// A stream that slows down at its refusals pauses a few milliseconds and
// gives its place back; only streams that keep being refused stay paused,
// a second at a time, so the places go to floods, and a flood of more
// streams than the places ends the rest. An honest fleet of one key whose
// rejoins the credential's command rate refuses pauses too: a fleet of more
// than perCred clients refused at once has the rest of its streams ended,
// to reconnect and rejoin where they were.

// pausedReaders counts the Subscribe streams whose readers are paused:
// after a refused command, or behind their turns. It is safe for
// concurrent use.
type pausedReaders struct {
	max     int64
	n       atomic.Int64
	full    error         // the status past max, built once
	perCred *streamCounts // per credential, with its own status
}

// newPausedReaders counts paused readers against max over the server and
// perCred per credential.
func newPausedReaders(max, perCred int) *pausedReaders {
	return &pausedReaders{
		max:     int64(max),
		full:    status.Errorf(codes.ResourceExhausted, "the server has %d streams whose commands wait unread (after a refused command, or behind replies their clients do not read), its limit, and this stream's had to wait too: wait for a refused command's retry_after before sending more, and read the stream's replies", max),
		perCred: newStreamCounts(perCred, status.Errorf(codes.ResourceExhausted, "this credential has %d streams whose commands wait unread (after a refused command, or behind replies their clients do not read), its limit, and this stream's had to wait too: wait for a refused command's retry_after before sending more, read the stream's replies, or use fewer streams", perCred)),
	}
}

// hold counts one more paused reader of id and returns the release of its
// credential's count, to be passed to unhold once the pause is over, or
// the status that ends the stream when the server or id has its limit
// paused already.
func (p *pausedReaders) hold(id *auth.Identity) (release func(), err error) {
	if p.n.Add(1) > p.max {
		p.n.Add(-1)
		return nil, p.full
	}
	release, err = p.perCred.open(id)
	if err != nil {
		p.n.Add(-1)
		return nil, err
	}
	return release, nil
}

// unhold counts a paused reader that hold counted as reading again.
func (p *pausedReaders) unhold(release func()) {
	release()
	p.n.Add(-1)
}

// pauseAfterRefusal pauses the stream's reader after a refused command, if
// the server and the credential may have one more reader paused; if not,
// it ends the stream (see pausedReaders). It reports whether the reader
// reads on.
func (ss *session) pauseAfterRefusal() bool {
	release, err := ss.srv.paused.hold(ss.credential)
	if err != nil {
		ss.srv.pausedEnds.Add(1)
		ss.srv.guard.refusedCall(ss.stream.Context())
		ss.endWith(err)
		return false
	}
	defer ss.srv.paused.unhold(release)
	return ss.pauseReading(ss.refusalPause())
}

// behindGrace is how long a reader waits for a place in its turns' queue
// before it counts as paused: a turn handles a queue of commands in far
// less, unless its writes are blocked, and a client that reads them waits
// for its window to come back for a round trip, not a second. A stream
// whose client reads nothing waits out the write timeout (10 s).
const behindGrace = time.Second

// handOn puts c in the turns' queue and wakes them, and reports whether the
// reader reads on: false if the stream ended meanwhile, or if the reader
// waited behindGrace and then found the server or its credential with
// their most readers paused already (see pausedReaders), which ends it.
func (ss *session) handOn(c command) bool {
	select {
	case ss.cmds <- c:
	default:
		if !ss.waitBehind(c) {
			return false
		}
	}
	ss.pending.Add(1)
	ss.wake()
	return true
}

// waitBehind waits for a place in the turns' queue for c.
func (ss *session) waitBehind(c command) bool {
	done := ss.stream.Context().Done()
	t := ss.pause.timer(behindGrace)
	select {
	case ss.cmds <- c:
		t.Stop()
		return true
	case <-done:
		t.Stop()
		return false
	case <-t.C:
	}
	release, err := ss.srv.paused.hold(ss.credential)
	if err != nil {
		ss.srv.pausedEnds.Add(1)
		ss.endWith(err)
		return false
	}
	defer ss.srv.paused.unhold(release)
	select {
	case ss.cmds <- c:
		return true
	case <-done:
		return false
	}
}
