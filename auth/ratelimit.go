package auth

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultMaxBuckets is how many identities a RateLimiter tracks at most by
// default.
const DefaultMaxBuckets = 100_000

// RateLimiter is a token bucket per credential, for publishes: each identity
// may publish perSecond times a second on average, in bursts of up to burst.
// Identities are told apart by Method and Subject, so every anonymous caller
// shares one bucket.
//
// The wait it advises a refused caller spreads the callers out: each
// refusal reserves the next free slot, one token's time (1/perSecond) after
// the last one it advised, so that callers who each wait out their advice
// come back one token apart rather than all at once, when one of them would
// get the token and the rest be refused again. Only the advice is reserved,
// never a token: a caller that does not come back costs no one anything,
// and a caller that comes back early may take the token of one that waited.
// The advice is at most the time an empty bucket takes to fill up (at least
// a second, at most 24 hours; see MaxRetryAfter), or the time until the
// next token if that is longer (at MinRate or faster it is not); a refusal
// told that bound is Crowded, and each identity's crowded refusals are
// counted by the second (Decision.CrowdedInSecond), so that a server can
// hold back a credential that ignores its advice over many connections.
// An identity stays crowded for twice the longest advice after its last
// refusal told that advice: its refusals are Crowded then even once its
// slots have come free (told their own slots, and not making the memory
// longer), and its bucket holds at most a twentieth of a second's tokens.
// A caller that ignores its advice and is held back (a server pauses its
// connections) finds its slots free when it comes back, as the horizon
// has receded meanwhile, and its bucket full: without the memory it could
// fill the slots all again, a second's worth of refusals at once, and
// take a burst's worth of tokens at once, in every round. Callers that
// wait out their advice after a crowd have their refusals counted for
// that while too; the twentieth of a second's tokens absorbs their
// spread-out returns coming a little early or late. Once the memory ends
// the bucket fills again.
//
// Memory is bounded: a bucket unused for the idle time is dropped (by
// default twice the time an empty bucket takes to fill up, after which a
// new bucket is indistinguishable from it, its crowding forgotten), and
// past the maximum number of buckets the least recently used one is
// dropped. A dropped bucket takes its count of crowded refusals with it.
//
// It is safe for concurrent use.
type RateLimiter struct {
	limit  rate.Limit
	burst  int
	idle   time.Duration
	max    int
	now    func() time.Time
	spread time.Duration // the longest advice that spreads callers out
	step   time.Duration // one token's time: the spacing of the slots
	held   int           // a crowded bucket's burst: a twentieth of a second's tokens, at least 1

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     list.List                // most recently used first
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	used time.Time
	slot time.Time // the last slot advised to a refused caller; see Take

	crowdedSince time.Time // when the second of crowded refusals began
	crowded      int       // crowded refusals since crowdedSince
	crowdedLast  time.Time // the last refusal told the longest advice: the memory runs from it
}

// RateLimitOption configures NewRateLimiter.
type RateLimitOption func(*rateConfig)

type rateConfig struct {
	idle time.Duration
	max  int
	now  func() time.Time
}

// WithMaxBuckets bounds the identities tracked at once; past it, the least
// recently used bucket is dropped (its identity starts afresh with a full
// bucket). The default is DefaultMaxBuckets (100,000).
func WithMaxBuckets(n int) RateLimitOption { return func(c *rateConfig) { c.max = n } }

// WithIdleEviction drops the bucket of an identity that has not published
// for d. The default is twice the time an empty bucket takes to fill up
// (burst/perSecond, but at least one second and at most 24 hours):
// dropping a bucket that has filled up, and whose crowding is forgotten,
// changes nothing. A shorter d forgets a crowded identity sooner (see
// RateLimiter).
func WithIdleEviction(d time.Duration) RateLimitOption { return func(c *rateConfig) { c.idle = d } }

// WithRateLimitClock sets the function that tells the limiter the current
// time. The default is time.Now; tests pass a fake clock.
func WithRateLimitClock(now func() time.Time) RateLimitOption {
	return func(c *rateConfig) { c.now = now }
}

// MinRate is the slowest rate a RateLimiter takes: one a day, a second's
// share of it. A slower one is no limit anyone means (0 is how a server
// turns a rate off), and its wait for the next token would be longer than
// the longest advice (MaxRetryAfter), which every crowded refusal is then
// told.
const MinRate = 1.0 / (24 * 60 * 60)

// NewRateLimiter returns a limiter allowing each identity perSecond
// publishes a second (a finite number, at least MinRate), in bursts of up
// to burst (at least 1).
func NewRateLimiter(perSecond float64, burst int, opts ...RateLimitOption) (*RateLimiter, error) {
	if !(perSecond >= MinRate) || math.IsInf(perSecond, 0) {
		return nil, fmt.Errorf("auth: rate limit must be a finite number a second, at least one a day (%.4g), got %v", MinRate, perSecond)
	}
	if burst < 1 {
		return nil, fmt.Errorf("auth: rate limit burst must be at least 1, got %d", burst)
	}
	refill := 24 * time.Hour
	if secs := float64(burst) / perSecond; secs < refill.Seconds() {
		refill = max(time.Second, time.Duration(secs*float64(time.Second)))
	}
	c := rateConfig{idle: 2 * refill, max: DefaultMaxBuckets, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.max < 1:
		return nil, fmt.Errorf("auth: rate limiter max buckets must be at least 1, got %d", c.max)
	case c.idle <= 0:
		return nil, fmt.Errorf("auth: rate limiter idle eviction must be positive, got %v", c.idle)
	case c.now == nil:
		return nil, fmt.Errorf("auth: rate limiter clock is nil")
	}
	return &RateLimiter{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		idle:    c.idle,
		max:     c.max,
		now:     c.now,
		spread:  refill,
		step:    tokenTime(perSecond, refill),
		held:    max(1, min(burst, int(perSecond/20))),
		buckets: make(map[string]*list.Element),
	}, nil
}

// Decision is a RateLimiter's answer to one caller.
type Decision struct {
	// OK reports whether the caller had a token, which it took.
	OK bool
	// RetryAfter is how long a refused caller should wait before it tries
	// again: the time of the slot reserved for it (see RateLimiter).
	RetryAfter time.Duration
	// Crowded reports that a refused caller was crowded: advised the longest wait,
	// the larger of MaxRetryAfter and the time until the next token (which
	// is no larger at the rates NewRateLimiter takes), because the slots
	// within it were all advised to callers before: more were refused
	// within it than callers that each wait out their advice can be, unless
	// more than rate × MaxRetryAfter of them wait at once. Callers that
	// ignore their advice, calling again at once, make every refusal
	// crowded once they have filled the slots. It is also set, with the
	// advice of the slot reserved, for every refusal within twice
	// MaxRetryAfter of the identity's last refusal advised the longest
	// wait (see RateLimiter), callers' that wait out their advice too.
	Crowded bool
	// CrowdedInSecond is, for a Crowded refusal, how many crowded refusals
	// the identity has had within the current second, this one included;
	// 0 otherwise. A second begins at the first crowded refusal more than a
	// second after the one that began the last. It counts every caller of
	// the identity, however many connections they use.
	CrowdedInSecond int
}

// Allow takes one token from id's bucket. It reports whether there was one,
// and if not, how long the caller should wait (see Take): the server should
// then refuse the publish with RateLimitError(retryAfter). A nil id counts
// as anonymous.
func (l *RateLimiter) Allow(id *Identity) (ok bool, retryAfter time.Duration) {
	d := l.Take(id)
	return d.OK, d.RetryAfter
}

// Take takes one token from id's bucket, or, if it is empty, reserves the
// next free slot for the caller and advises it to come back then (see
// RateLimiter). A nil id counts as anonymous.
func (l *RateLimiter) Take(id *Identity) Decision {
	// The key is built on the stack and looked up without a copy: a string
	// is made of it only for a new bucket, so that a refusal in a flood
	// allocates nothing.
	var buf [64]byte
	key := append(append(append(buf[:0], MethodAnonymous...), ':'), AnonymousSubject...)
	if id != nil {
		key = append(append(append(buf[:0], id.Method...), ':'), id.Subject...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// The clock is read under the lock: a time read before it could be
	// older than the last caller's, and a limiter taken back in time
	// credits the same interval's tokens twice.
	now := l.now()
	l.evict(now)
	var b *bucket
	if e := l.buckets[string(key)]; e != nil {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
	} else {
		b = &bucket{key: string(key), lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[b.key] = l.lru.PushFront(b)
		for len(l.buckets) > l.max {
			l.drop(l.lru.Back())
		}
	}
	b.used = now
	if b.lim.Burst() != l.burst && now.Sub(b.crowdedLast) > 2*l.spread {
		b.lim.SetBurstAt(now, l.burst) // its crowding forgotten: the bucket fills again from here
	}
	r := b.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return Decision{OK: true}
	}
	r.CancelAt(now)
	// The first caller refused is told when the next token comes; each one
	// after it, one token's time after the slot told the one before. A
	// horizon in the past is where nobody waits: it starts over from now.
	slot := now.Add(d)
	if next := b.slot.Add(l.step); next.After(slot) {
		slot = next
	}
	// Past the bound, the slots are spent by callers that do not wait
	// (or by more waiters than the rate serves in that time): the advice
	// stops growing, and the horizon with it, so that it recedes as soon
	// as the refusals slow down.
	bound := max(d, l.spread)
	if slot.Sub(now) > bound {
		b.slot = now.Add(bound)
		b.crowdedLast = now
		return b.crowd(now, bound, l.held)
	}
	b.slot = slot
	if !b.crowdedLast.IsZero() && now.Sub(b.crowdedLast) <= 2*l.spread {
		return b.crowd(now, slot.Sub(now), l.held)
	}
	return Decision{RetryAfter: slot.Sub(now)}
}

// crowd counts a crowded refusal of b at now, advised wait, and holds its
// bucket's burst to held.
func (b *bucket) crowd(now time.Time, wait time.Duration, held int) Decision {
	if now.Sub(b.crowdedSince) > time.Second {
		b.crowdedSince, b.crowded = now, 0
	}
	b.crowded++
	if b.lim.Burst() > held {
		b.lim.SetBurstAt(now, held)
	}
	return Decision{RetryAfter: wait, Crowded: true, CrowdedInSecond: b.crowded}
}

// tokenTime is how long a bucket takes to earn one token at perSecond,
// rounded up to a whole nanosecond, at most limit. Rounded down, each slot
// would come up to a nanosecond earlier than the one before it, and a
// caller that came back punctually would find its token not yet earned.
func tokenTime(perSecond float64, limit time.Duration) time.Duration {
	if secs := 1 / perSecond; secs < limit.Seconds() {
		return max(time.Duration(math.Ceil(secs*float64(time.Second))), 1)
	}
	return limit
}

// MaxRetryAfter is the longest wait the limiter advises to spread callers
// out: the time an empty bucket takes to fill up, at least a second and at
// most 24 hours. Only a wait for the next token could be longer, which at
// MinRate or faster it is not.
func (l *RateLimiter) MaxRetryAfter() time.Duration { return l.spread }

// evict drops the buckets idle since before now-idle, oldest first.
func (l *RateLimiter) evict(now time.Time) {
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		if now.Sub(e.Value.(*bucket).used) < l.idle {
			return
		}
		l.drop(e)
	}
}

func (l *RateLimiter) drop(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// Len returns the number of buckets the limiter holds now.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// RateLimitError returns the RESOURCE_EXHAUSTED status for a publish refused
// by a RateLimiter, with a google.rpc.RetryInfo detail whose retry_delay is
// retryAfter, so that clients know when to try again.
func RateLimitError(retryAfter time.Duration) error {
	retryAfter = max(retryAfter, 0)
	st := status.Newf(codes.ResourceExhausted, "publish rate limit exceeded for this credential; retry after %v", retryAfter.Round(time.Millisecond))
	if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		st = detailed
	}
	return st.Err()
}
