package server

import (
	"math"
	"sync"
	"time"

	"github.com/roomcast/roomcast/auth"
	roomcastv1 "github.com/roomcast/roomcast/gen/roomcast/v1"
)

// Each credential's publishes are held to a rate in bytes, beside the rate
// in publishes of access.publish: at the default message limit, 10,000
// publishes a second would be 10 GB a second, which the server cannot read,
// copy and retain without starving every other client of CPU (1 MiB
// messages from one credential cost the server most of a core, mostly
// copying them into fresh memory, and the other clients' latency rose
// tenfold: issue #13 (b)).
//
// The bucket may go into debt: a publish is let through while its
// credential owes nothing, and its bytes are taken as it is published
// (given back if it is then refused: reserve).
// So a message of any size up to the limit passes, a credential's average
// is held to the rate, and a publish is refused by its credential alone,
// in the tap, before its request is read or decoded.

// byteRate is a token bucket of bytes per credential that may go into
// debt. It is safe for concurrent use.
type byteRate struct {
	rate   float64 // bytes a second
	burst  float64
	spread time.Duration // the longest advice that spreads publishers out (publishadvice.go)
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*byteBucket // credentials that published since the last sweep, or are not full
	sweepAt int                    // sweep the full buckets out when len(buckets) reaches it
}

type byteBucket struct {
	tokens float64 // may be negative: debt
	at     time.Time

	// Of the advice to refused publishes (publishadvice.go).
	largest      int       // the largest charge since the bucket was last full
	slot         time.Time // the last slot advised to a refused publish
	crowdedSince time.Time // when the second of crowded refusals began
	crowded      int       // crowded refusals since crowdedSince
	crowdedBytes int       // their bodies' bytes
}

// minByteSweep is the bucket count below which no sweep is done.
const minByteSweep = 1024

func newByteRate(perSecond float64, burst int) *byteRate {
	return &byteRate{rate: perSecond, burst: float64(burst), spread: byteSpread(perSecond, burst), now: time.Now, buckets: make(map[string]*byteBucket), sweepAt: minByteSweep}
}

// refill brings b up to t; it reports whether b is full.
func (r *byteRate) refill(b *byteBucket, t time.Time) bool {
	b.tokens = min(r.burst, b.tokens+t.Sub(b.at).Seconds()*r.rate)
	b.at = t
	return b.tokens >= r.burst
}

// owing returns how long until id's credential owes nothing, or 0 if it
// owes nothing now. A full bucket stays (sweep drops it), so that a
// credential publishing steadily keeps its bucket and its key.
func (r *byteRate) owing(id *auth.Identity) time.Duration {
	var buf [64]byte
	key := appendCredentialKey(buf[:0], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[string(key)] // a lookup by bytes, which copies nothing
	if b == nil {
		return 0
	}
	r.refill(b, r.now())
	if b.tokens >= 0 {
		return 0
	}
	return r.timeFor(-b.tokens)
}

// timeFor is how long the rate takes to earn n bytes.
func (r *byteRate) timeFor(n float64) time.Duration {
	// A float past the longest Duration converts to what the platform
	// makes of it (negative on amd64): a slow rate's debt would owe nothing.
	if ns := n / r.rate * float64(time.Second); ns < math.MaxInt64 {
		return time.Duration(ns)
	}
	return math.MaxInt64
}

// reserve takes n bytes from id's bucket, into debt if need be, unless
// its credential owes more than slack bytes: then it takes nothing and
// returns how long until the credential owes nothing. Checking and taking
// in one step holds publishes in flight together (each checked before it
// is published and charged after, all would pass) to slack past the rate.
func (r *byteRate) reserve(id *auth.Identity, n int, slack float64) time.Duration {
	var buf [64]byte
	key := appendCredentialKey(buf[:0], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.now()
	b := r.buckets[string(key)]
	if b == nil {
		if len(r.buckets) >= r.sweepAt {
			r.sweep(t)
		}
		b = &byteBucket{tokens: r.burst, at: t}
		r.buckets[string(key)] = b
	}
	full := r.refill(b, t)
	if b.tokens < -slack {
		return r.timeFor(-b.tokens)
	}
	if full {
		b.largest = 0
	}
	b.largest = max(b.largest, n)
	b.tokens -= float64(n)
	return 0
}

// charge takes n bytes from id's bucket, into debt if need be.
func (r *byteRate) charge(id *auth.Identity, n int) { r.reserve(id, n, math.Inf(1)) }

// refund gives back to id's bucket n bytes reserved for a publish that was
// then refused.
func (r *byteRate) refund(id *auth.Identity, n int) {
	var buf [64]byte
	key := appendCredentialKey(buf[:0], id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.buckets[string(key)]; b != nil {
		r.refill(b, r.now())
		b.tokens = min(r.burst, b.tokens+float64(n))
	}
}

// sweep drops the buckets that have filled up, which a new bucket equals,
// so that the map holds only credentials that published within the time a
// bucket takes to fill.
func (r *byteRate) sweep(t time.Time) {
	for k, b := range r.buckets {
		if r.refill(b, t) {
			delete(r.buckets, k)
		}
	}
	r.sweepAt = max(minByteSweep, 2*len(r.buckets))
}

// allowPublishBytes refuses a publish of id while its credential owes
// bytes of its rate.
func (a *access) allowPublishBytes(id *auth.Identity) error {
	if a.publishBytes == nil {
		return nil
	}
	if wait := a.publishBytes.owing(id); wait > 0 {
		return a.bytesRefusals.refusal(wait)
	}
	return nil
}

// reservePublishBytes takes a publish of n bytes by id from its
// credential's byte rate before it is published (refundPublishBytes gives
// them back if it is then refused), or refuses it while the credential
// owes: anything, or, for a unary Publish the tap let through owing
// nothing (tapped), more than a burst. Publishes let through together are
// so accepted once read, not read and decoded for nothing (about 120
// bodies of 1 MiB in 5 s under attack (b) of issue #13, when each was
// refused once others had been charged), and their debt is paid before
// the credential's next passes the tap; while a client that sends many
// calls' headers before any body, all passing the tap before the first is
// charged, is held to about a burst past the rate, not to as many
// messages as it has calls in flight.
func (a *access) reservePublishBytes(id *auth.Identity, n int, tapped bool) error {
	r := a.publishBytes
	if r == nil {
		return nil
	}
	slack := 0.0
	if tapped {
		slack = r.burst
	}
	if wait := r.reserve(id, n, slack); wait > 0 {
		return a.bytesRefusals.refusal(wait)
	}
	return nil
}

// refundPublishBytes gives back the n bytes reservePublishBytes took for a
// publish by id that was then refused.
func (a *access) refundPublishBytes(id *auth.Identity, n int) {
	if a.publishBytes != nil {
		a.publishBytes.refund(id, n)
	}
}

// owingPublishes refuses a PublishStream of id in the tap while its
// credential owes bytes of its rate, so that the refusal costs neither
// reading its requests nor decoding them. (A unary Publish is refused with
// spread advice: owingUnaryPublish.)
func (s *Server) owingPublishes(method string, id *auth.Identity) error {
	if s.access.publishBytes == nil || method != roomcastv1.BrokerService_PublishStream_FullMethodName {
		return nil
	}
	return s.access.allowPublishBytes(id)
}
