package server

import (
	"context"
	"math"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// A unary Publish refused in the tap for its credential's byte rate still
// costs the server its body: grpc-go refuses the call from its headers, but
// the client has already sent its message up to the stream window (256
// KiB by default), which the server reads and throws away. Under issue
// #13's attack (b), 1 MiB messages from 8 goroutines that call again as
// soon as they are refused, the server read 470 MiB in 5 s for 131 MiB it
// accepted: 1,009 refused bodies of about 340 KiB each, window and frames.
//
// So the byte rate advises its refused publishes as the publish rate does
// (auth.RateLimiter): each one refused is told a slot one message's time
// after the last one told, the message being the largest the credential
// published since its bucket was last full, so that publishers that each
// wait out their advice come back one at a time, each finding the debt of
// the one before paid, rather than all at once, when one would pass and
// the rest be refused again (with the same advice, 8 goroutines of 64 KiB
// publishes were refused about seven times per success, and each refusal
// cost its body). The advice stops growing at byteSpread past the time the
// debt takes to be paid; a refusal told that is crowded: its callers are
// not waiting out their advice (or more of them wait at once than the rate
// serves in that time). It counts as a crowded refusal of a rate does
// (crowdedCall), and its body's bytes, as many as the stream window lets
// the client send (whatever it sent), count toward its
// connection's crowded bodies and its credential's: past
// freeCrowdedBodies within a second on the connection, or
// freeCredentialCrowdedBodies of the credential's, the tap pauses the
// connection after each (see crowdedBodyCall). A publisher that waits out
// its advice is never crowded, so never paused.

// Allowances of crowded refusals' bodies within a second: a connection's,
// and a credential's over all its connections, in bytes. A connection's is
// its receive window (DefaultConnWindow), 16 bodies of the default stream
// window: more crowded refusals than that come from callers that ignore
// their advice, or from more of them waiting at once than the byte rate
// serves in its longest advice (32 publishers of 1 MiB at the default
// rate). A credential's is twice that, as a fleet of backends often
// shares one key.
const (
	freeCrowdedBodies           = DefaultConnWindow
	freeCredentialCrowdedBodies = 2 * freeCrowdedBodies
)

// byteSpread is the longest advice of a byte rate: the time its empty
// bucket takes to fill up, at least a second and at most a day.
func byteSpread(perSecond float64, burst int) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	return min(max(time.Duration(float64(burst)/perSecond*float64(time.Second)), time.Second), 24*time.Hour)
}

// byteAdvice is a byte rate's answer to a unary publish.
type byteAdvice struct {
	wait    time.Duration // how long it should wait; 0: it may publish now
	crowded bool          // it was told the longest advice (see byteSpread)
	body    int           // for a crowded one, the bytes its body may have sent
	// credCrowded and credBodies are, for a crowded one, its credential's
	// crowded refusals within the second, its own included, and their
	// bodies' bytes.
	credCrowded, credBodies int
}

// advise returns id's advice: none while its credential owes nothing,
// else the next free slot (see above). body is what a refused call's body
// may have sent: the stream window, or the largest message if less. It is
// counted for each crowded refusal, whatever the credential's accepted
// messages were: a client that keeps those small and sends large bodies
// only while it owes (its RetryInfo tells it when) would otherwise have
// its crowded refusals counted light. (Its slots are still its accepted
// messages' time apart: see docs/attacks.md, what is left.)
func (r *byteRate) advise(id *auth.Identity, body int) byteAdvice {
	var buf [64]byte
	key := appendCredentialKey(buf[:0], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[string(key)]
	if b == nil {
		return byteAdvice{}
	}
	now := r.now()
	r.refill(b, now)
	if b.tokens >= 0 {
		return byteAdvice{}
	}
	owed := r.timeFor(-b.tokens)
	slot := now.Add(owed)
	if next := b.slot.Add(r.timeFor(float64(max(b.largest, 1)))); next.After(slot) {
		slot = next
	}
	bound := owed + r.spread // the horizon, from when the debt is paid
	if bound < owed {
		bound = math.MaxInt64
	}
	if slot.Sub(now) > bound {
		// As the publish rate's: the horizon stops at the bound, so that
		// it recedes as soon as the refusals slow down.
		b.slot = now.Add(bound)
		body = max(body, 1)
		if now.Sub(b.crowdedSince) > time.Second {
			b.crowdedSince, b.crowded, b.crowdedBytes = now, 0, 0
		}
		b.crowded++
		b.crowdedBytes += body
		return byteAdvice{wait: bound, crowded: true, body: body, credCrowded: b.crowded, credBodies: b.crowdedBytes}
	}
	b.slot = slot
	return byteAdvice{wait: slot.Sub(now)}
}

// owingUnaryPublish refuses a unary Publish in the tap while its
// credential owes bytes of its rate, with the advice of advise; a crowded
// refusal counts its body toward its connection's pause (see
// crowdedBodyCall), another not at all.
func (s *Server) owingUnaryPublish(id *auth.Identity) (refusal, error) {
	a := s.access
	if a.publishBytes == nil {
		return refusal{}, nil
	}
	body := s.cfg.maxMessageBytes
	if w := s.cfg.streamWindow; w > 0 {
		body = min(body, w)
	}
	adv := a.publishBytes.advise(id, body)
	if adv.wait <= 0 {
		return refusal{}, nil
	}
	err := a.bytesRefusals.refusal(adv.wait)
	if !adv.crowded {
		return refusal{}, err
	}
	return refusal{kind: crowdedBodyRefusal, credCrowded: adv.credCrowded, body: adv.body, credBodies: adv.credBodies}, err
}

// crowdedBodyCall counts a unary Publish of ctx's connection that the tap
// refused with crowded advice of its byte rate, the credCrowded'th of its
// credential's within the second, whose body may have sent body bytes,
// credBodies those of its credential's such refusals, and returns how long
// the tap should pause the connection's reading after it: crowdedCall's
// pause for the count, or past the connection's freeCrowdedBodies or the
// credential's freeCredentialCrowdedBodies (tests may allow fewer)
// refusalPause's, doubling with each such refusal past the allowance (past
// the credential's, with the connection's own, as crowdedCall's),
// whichever is longer. It never closes the connection, for crowdedCall's
// reasons.
func (g *connGuard) crowdedBodyCall(ctx context.Context, body, credCrowded, credBodies int) time.Duration {
	d := g.crowdedCall(ctx, credCrowded, 0)
	body = max(body, 1)
	n, _, t, _ := g.countRefusal(ctx, func(t *tracked) *refusals { return &t.crowdedBodies }, body, nil)
	if t == nil {
		return d
	}
	if past := max(n-g.maxCrowdedBodies, min(n, credBodies-g.maxCredCrowdedBodies)); past > 0 {
		d = max(d, refusalPause((past+body-1)/body))
	}
	return d
}
