package auth_test

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/testsupport/fakeclock"
)

func user(name string) *auth.Identity { return &auth.Identity{Subject: name, Method: auth.MethodJWT} }

func TestRateLimiter(t *testing.T) {
	clk := fakeclock.New(now)
	l, err := auth.NewRateLimiter(2, 3, auth.WithRateLimitClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	alice := user("alice")
	for i := range 3 {
		if ok, d := l.Allow(alice); !ok || d != 0 {
			t.Fatalf("publish %d refused (%v)", i, d)
		}
	}
	if ok, d := l.Allow(alice); ok || d != 500*time.Millisecond {
		t.Fatalf("4th publish: %v, retry after %v; want refused, 500ms", ok, d)
	}
	// A refused publish takes no token, but reserves its slot: the next
	// refused caller is told one token's time later (see
	// TestRateLimiterSpreadsItsAdvice).
	clk.Advance(200 * time.Millisecond)
	if ok, d := l.Allow(alice); ok || d != 800*time.Millisecond {
		t.Fatalf("after 200ms: %v, %v; want refused, 800ms", ok, d)
	}
	// Other identities have their own buckets; an API key with the same
	// subject as a JWT is another credential.
	if ok, _ := l.Allow(user("bob")); !ok {
		t.Fatal("bob limited by alice")
	}
	if ok, _ := l.Allow(&auth.Identity{Subject: "alice", Method: auth.MethodAPIKey}); !ok {
		t.Fatal("alice's API key limited by alice's JWT")
	}
	clk.Advance(300 * time.Millisecond)
	if ok, _ := l.Allow(alice); !ok {
		t.Fatal("refused once the token is back")
	}
	// nil and anonymous identities share one bucket.
	anon := &auth.Identity{Subject: auth.AnonymousSubject, Method: auth.MethodAnonymous}
	for range 3 {
		l.Allow(nil)
	}
	if ok, _ := l.Allow(anon); ok {
		t.Fatal("anonymous caller not limited with nil")
	}
}

func TestRateLimiterEviction(t *testing.T) {
	clk := fakeclock.New(now)
	// 1 per second, burst 5: an empty bucket fills up in 5s; the default
	// idle eviction is twice that.
	l, err := auth.NewRateLimiter(1, 5, auth.WithRateLimitClock(clk.Now), auth.WithMaxBuckets(3))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l.Allow(user(fmt.Sprint(i)))
		clk.Advance(time.Second)
	}
	if l.Len() != 3 {
		t.Fatalf("Len = %d", l.Len())
	}
	// A fourth identity pushes out the least recently used, 0.
	l.Allow(user("0")) // now 0 is the most recent; 1 is the least
	l.Allow(user("3"))
	if l.Len() != 3 {
		t.Fatalf("Len = %d after the cap", l.Len())
	}
	// 1 was dropped: it starts afresh with a full bucket.
	for i := range 5 {
		if ok, _ := l.Allow(user("1")); !ok {
			t.Fatalf("publish %d of the dropped identity refused", i)
		}
	}
	// Idle buckets go once they would be full again, and their crowding
	// forgotten.
	clk.Advance(5 * time.Second)
	l.Allow(user("4"))
	if l.Len() != 4-1 {
		t.Fatalf("Len = %d after idling half the idle time", l.Len())
	}
	clk.Advance(5 * time.Second)
	l.Allow(user("5"))
	if l.Len() != 2 {
		t.Fatalf("Len = %d after idling", l.Len())
	}

	l2, err := auth.NewRateLimiter(1, 1, auth.WithRateLimitClock(clk.Now), auth.WithIdleEviction(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	l2.Allow(user("a"))
	clk.Advance(59 * time.Minute)
	l2.Allow(user("b"))
	clk.Advance(time.Minute)
	l2.Allow(user("b"))
	if l2.Len() != 1 {
		t.Fatalf("Len = %d with a one-hour idle eviction", l2.Len())
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	clk := fakeclock.New(now)
	l, err := auth.NewRateLimiter(1, 50, auth.WithRateLimitClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if ok, _ := l.Allow(user("shared")); ok {
					allowed.Add(1)
				}
				l.Allow(user(fmt.Sprint(g, i)))
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Fatalf("%d publishes allowed from a burst of 50", allowed.Load())
	}
}

// Callers that contend for the limiter on the real clock get no more than
// the rate allows: a clock read before the limiter's lock could take it
// back in time, crediting the same interval twice (about six times the
// rate with 8 callers, before the fix).
func TestRateLimiterContendedRealClock(t *testing.T) {
	const perSecond, burst = 1000, 10
	l, err := auth.NewRateLimiter(perSecond, burst)
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(start) < 300*time.Millisecond {
				if ok, _ := l.Allow(user("shared")); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	limit := burst + int64(perSecond*time.Since(start).Seconds()) + 1
	if n := allowed.Load(); n > limit {
		t.Fatalf("%d publishes allowed, at most %d may be", n, limit)
	}
}

func TestNewRateLimiterErrors(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
		opts  []auth.RateLimitOption
	}{
		{0, 1, nil}, {-1, 1, nil}, {math.Inf(1), 1, nil}, {math.NaN(), 1, nil}, {1, 0, nil},
		{1e-10, 1, nil}, {math.Nextafter(auth.MinRate, 0), 1, nil}, {1e-300, 1000, nil},
		{1, 1, []auth.RateLimitOption{auth.WithMaxBuckets(0)}},
		{1, 1, []auth.RateLimitOption{auth.WithIdleEviction(0)}},
		{1, 1, []auth.RateLimitOption{auth.WithRateLimitClock(nil)}},
	} {
		if _, err := auth.NewRateLimiter(tc.rate, tc.burst, tc.opts...); err == nil {
			t.Errorf("NewRateLimiter(%v, %d) accepted", tc.rate, tc.burst)
		}
	}
	// One a day is fine, and its longest advice is the day it takes to
	// earn a token: every crowded refusal is told that.
	l, err := auth.NewRateLimiter(auth.MinRate, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.MaxRetryAfter(); got != 24*time.Hour {
		t.Errorf("MaxRetryAfter at one a day: %v, want 24h", got)
	}
}

func TestRateLimitError(t *testing.T) {
	st := status.Convert(auth.RateLimitError(1500 * time.Millisecond))
	if st.Code() != codes.ResourceExhausted || st.Message() != "publish rate limit exceeded for this credential; retry after 1.5s" {
		t.Fatalf("status %v", st)
	}
	details := st.Details()
	if len(details) != 1 {
		t.Fatalf("details %v", details)
	}
	ri, ok := details[0].(*errdetails.RetryInfo)
	if !ok || ri.GetRetryDelay().AsDuration() != 1500*time.Millisecond {
		t.Fatalf("detail %v", details[0])
	}
}
