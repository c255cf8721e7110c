package server

import (
	"errors"
	"time"

	"golang.org/x/time/rate"

	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// A stream's commands are held to the rate limits by its reader, as it
// reads each one, rather than by the turn that runs it: a refused command
// reaches the writer only for its error reply, never the broker. After a
// refusal the reader pauses before it reads the stream's next command, for
// firstRefusalPause doubled for each earlier refusal of its run (see
// refusalStreak), at most maxRefusalPause. A client that slows down at its
// first refusals loses a few milliseconds (more while its credential's
// other streams keep the rate busy: see streakQuiet); one that keeps sending
// regardless is read about once a second, its sends backing up in HTTP/2
// flow control, where answering each of its commands with a refusal cost
// the server as much as running it, and a flood from 50 streams starved
// the other clients of CPU (issue #13).
const (
	firstRefusalPause = time.Millisecond
	maxRefusalPause   = time.Second
)

// command is what a stream's reader hands to its turns.
type command struct {
	req     *roomcastv1.SubscribeRequest
	refused error // the rate limits refused it: its reply, or errCommandFlood
}

// errCommandFlood ends a stream whose commands keep being refused by the
// rate limits (see rateLimit).
var errCommandFlood = errors.New("too many commands past the rate limit")

// rateLimit applies the stream's command rate and its credential's, on the
// reader. A client that keeps sending past them, more than
// maxRefusedCommands refused within a second, gets errCommandFlood, which
// ends its stream: the pauses keep a stream under a dozen refusals a
// second, so only a low maxRefusedCommands is ever reached.
func (ss *session) rateLimit() error {
	err := ss.rateLimitErr()
	if err == nil {
		return nil
	}
	now := time.Now()
	ss.streak.add(now)
	if n := ss.refused.add(now); ss.srv.cfg.maxRefusedCommands > 0 && n > ss.srv.cfg.maxRefusedCommands {
		return errCommandFlood
	}
	return err
}

// rateLimitErr asks the stream's own limiter first, so that a stream past
// its own rate is refused without taking the credential limiter's lock,
// which every stream of every credential shares.
func (ss *session) rateLimitErr() error {
	if ss.commands != nil {
		if now := time.Now(); !ss.commands.AllowN(now, 1) {
			return ss.srv.access.streamCommandRefusals.refusal(tokenWait(ss.commands, now))
		}
	}
	return ss.srv.access.allowCommand(ss.credential) // the credential's rate over all its streams
}

// streakQuiet ends a stream's run of refusals: a refusal more than this
// after the one before starts a new run, at the shortest pause. It is
// longer than the longest pause, so that a stream refused again after each
// pause keeps the longest: counted within each second instead, the pauses
// began again at a millisecond every second, and a credential's thousand
// streams flooding commands were each read and refused about ten times a
// second for as long as they flooded (10,000 refusals a second; running
// on saved 3.2 s of the server's 11.3 s of CPU in a 30 s run). The price: a stream refused for
// its credential's rate, shared with a fleet that keeps it busy, waits the
// longest pause too after a few refusals, until a quiet 2 s (20 clients of
// a key rejoining 256 rooms each took 2.1 s rather than 1.65 s).
const streakQuiet = 2 * maxRefusalPause

// refusalStreak counts a stream's refusals in a run: those less than
// streakQuiet apart. Its reader alone uses it.
type refusalStreak struct {
	n    int
	last time.Time
}

// add counts a refusal at now and returns how many its run has had.
func (s *refusalStreak) add(now time.Time) int {
	if now.Sub(s.last) > streakQuiet {
		s.n = 0
	}
	s.last = now
	s.n++
	return s.n
}

// tokenWait is how long l, which has just refused a command at now, takes
// to hold the token of the next: what the refusal advises. A wait past
// maxSharedWait, at a rate below a command in four seconds, is advised as
// oneToken, the rate's longest, whose refusal status is shared: the exact
// wait would need one of its own each time.
func tokenWait(l *rate.Limiter, now time.Time) time.Duration {
	perSecond := float64(l.Limit())
	wait := time.Duration(max(1-l.TokensAt(now), 0) / perSecond * float64(time.Second))
	if wait > maxSharedWait {
		return oneToken(perSecond)
	}
	return wait
}

// oneToken is how long a rate of perSecond takes to make one token.
func oneToken(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / perSecond)
}

// refusalPause is how long the reader waits after the latest refusal.
func (ss *session) refusalPause() time.Duration { return refusalPause(ss.streak.n) }

// refusals counts refusals within the current second: those of a stream's
// commands, of a PublishStream's requests, or of a connection's calls. Its
// owner serializes its calls.
type refusals struct {
	n     int
	since time.Time
}

// add counts one more refusal, at now, and returns how many there were
// within its second.
func (r *refusals) add(now time.Time) int { return r.addN(now, 1) }

// addN counts n more, at now (bytes, for the bodies of crowdedBodyCall),
// and returns how many there were within its second.
func (r *refusals) addN(now time.Time, n int) int {
	if now.Sub(r.since) > time.Second {
		r.since, r.n = now, 0
	}
	r.n += n
	return r.n
}

// refusalPause is the pause after the nth refusal (of a stream's run, or
// within a second for the others): firstRefusalPause doubled for each
// earlier one, at most maxRefusalPause. A stream's reader pauses so after a
// refused command, and the tap so after a call it refused (see tap.go).
func refusalPause(n int) time.Duration {
	return min(firstRefusalPause<<min(max(n-1, 0), 20), maxRefusalPause)
}

// pauseReading waits d before the reader reads on; false if the stream
// ended meanwhile.
func (ss *session) pauseReading(d time.Duration) bool {
	if hook := ss.srv.cfg.readPauseHook; hook != nil {
		hook(ss.id, d)
	}
	return ss.pause.wait(d, ss.stream.Context().Done(), nil)
}

// pause waits d, or until done is closed, and reports whether d passed:
// the refusal pauses of PublishStream streams and of connections (a
// Subscribe stream's reader pauses on its pauseTimer).
func pause(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
