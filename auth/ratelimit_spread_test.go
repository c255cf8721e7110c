package auth_test

import (
	"slices"
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
	"github.com/roomcast/roomcast/internal/testsupport/fakeclock"
)

// newSpreadLimiter returns a limiter of perSecond, bursts of burst, on clk.
func newSpreadLimiter(t *testing.T, clk *fakeclock.Clock, perSecond float64, burst int) *auth.RateLimiter {
	t.Helper()
	l, err := auth.NewRateLimiter(perSecond, burst, auth.WithRateLimitClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Consecutive refusals are told distinct, increasing waits, one token's time
// apart, the first the time until the next token; other credentials' slots
// are their own.
func TestRateLimiterSpreadsItsAdvice(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 100, 1) // a token every 10ms
	alice := user("alice")
	if ok, _ := l.Allow(alice); !ok {
		t.Fatal("the burst refused")
	}
	for i := range 20 {
		d := l.Take(alice)
		want := time.Duration(i+1) * 10 * time.Millisecond
		if d.OK || d.RetryAfter != want || d.Crowded {
			t.Fatalf("refusal %d: %+v, want a wait of %v, not crowded", i, d, want)
		}
	}
	l.Allow(user("bob"))
	if ok, d := l.Allow(user("bob")); ok || d != 10*time.Millisecond {
		t.Errorf("bob's first refusal: %v, %v; want refused, 10ms: alice's slots are hers", ok, d)
	}
	// Later refusals continue from the last slot, wherever the clock is.
	clk.Advance(5 * time.Millisecond)
	if _, d := l.Allow(alice); d != 210*time.Millisecond-5*time.Millisecond {
		t.Errorf("a refusal 5ms on: told %v, want 205ms", d)
	}
}

// Callers that each come back when they were told find a token, however
// many were refused together: they come back one token's time apart.
func TestRateLimiterAdviceFindsATokenEachTime(t *testing.T) {
	const callers = 50
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 1000, 10)
	alice := user("alice")
	for range 10 {
		l.Allow(alice)
	}
	var waits []time.Duration
	for i := range callers {
		ok, d := l.Allow(alice)
		if ok {
			t.Fatalf("caller %d took a token past the burst", i)
		}
		waits = append(waits, d)
	}
	if !slices.IsSorted(waits) || len(slices.Compact(slices.Clone(waits))) != callers {
		t.Fatalf("the callers were told %v: want %d distinct waits, in order", waits, callers)
	}
	var waited time.Duration
	for i, d := range waits {
		clk.Advance(d - waited)
		waited = d
		if ok, again := l.Allow(alice); !ok {
			t.Fatalf("caller %d came back after %v as told and was refused again (told %v)", i, d, again)
		}
	}
}

// A horizon in the past starts over: once the slots told have passed, the
// first caller refused is told the time until the next token.
func TestRateLimiterAdviceHorizonResets(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 10, 1) // a token every 100ms
	alice := user("alice")
	l.Allow(alice)
	for range 5 {
		l.Allow(alice) // slots at 100ms to 500ms
	}
	clk.Advance(time.Second) // past every slot; a token is back
	if ok, _ := l.Allow(alice); !ok {
		t.Fatal("refused once the slots had passed")
	}
	clk.Advance(30 * time.Millisecond)
	if ok, d := l.Allow(alice); ok || d != 70*time.Millisecond {
		t.Errorf("the first refusal after the horizon passed: %v, %v; want refused, 70ms (the next token)", ok, d)
	}
}

// Callers that ignore their advice fill the slots up to MaxRetryAfter:
// past it every refusal is told that and is Crowded, and the horizon does
// not run on, so that once the refusals slow below the rate they are told
// less again (and still counted as crowded for a while: see
// TestRateLimiterRemembersCallersThatIgnoredTheirAdvice).
func TestRateLimiterAdviceIsBounded(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 100, 50) // fills up in 500ms: the bound is 1s
	if got := l.MaxRetryAfter(); got != time.Second {
		t.Fatalf("MaxRetryAfter = %v, want 1s", got)
	}
	alice := user("alice")
	for range 50 {
		l.Allow(alice)
	}
	for i := range 100 { // 10ms to 1s
		if d := l.Take(alice); d.Crowded || d.RetryAfter > time.Second {
			t.Fatalf("refusal %d: %+v, want no more than 1s, not crowded", i, d)
		}
	}
	for i := range 1000 {
		if d := l.Take(alice); !d.Crowded || d.RetryAfter != time.Second {
			t.Fatalf("refusal %d past the slots: %+v, want 1s, crowded", i, d)
		}
	}
	clk.Advance(20 * time.Millisecond) // slower than one refusal per token
	// Two tokens: a crowded bucket holds at most 5, a twentieth of a second's.
	for range 2 {
		if ok, _ := l.Allow(alice); !ok {
			t.Fatal("the tokens of 20ms refused")
		}
	}
	if d := l.Take(alice); d.RetryAfter != time.Second-10*time.Millisecond {
		t.Errorf("a refusal 20ms on: %+v, want 990ms", d)
	}
	// The bound is the time a bucket takes to fill up when that is longer,
	// and the time until the next token when that is longer still.
	slow := newSpreadLimiter(t, clk, 10, 50)
	if got := slow.MaxRetryAfter(); got != 5*time.Second {
		t.Errorf("MaxRetryAfter at 10/s, bursts of 50: %v, want 5s", got)
	}
	slower := newSpreadLimiter(t, clk, 0.001, 1)
	slower.Allow(alice)
	first, second := slower.Take(alice), slower.Take(alice)
	if first.RetryAfter != 1000*time.Second || first.Crowded || second.RetryAfter != 1000*time.Second || !second.Crowded {
		t.Errorf("at 0.001/s: refusals told %+v then %+v, want 1000s, then 1000s crowded", first, second)
	}
}

// At a rate whose token time is not a whole number of nanoseconds, callers
// that each come back exactly when they were told find their token: the
// slots are rounded up, never early. Truncated, each slot drifted up to a
// nanosecond earlier than the one before, and the waiters came back before
// their tokens.
func TestRateLimiterAdviceIsNeverEarly(t *testing.T) {
	for _, perSecond := range []float64{0.3, 3, 7, 13, 300, 999.7, 3333.3} {
		clk := fakeclock.New(now)
		l := newSpreadLimiter(t, clk, perSecond, 1)
		alice := user("alice")
		l.Allow(alice)
		var waits []time.Duration
		for {
			d := l.Take(alice)
			if d.Crowded {
				break
			}
			waits = append(waits, d.RetryAfter)
		}
		var waited time.Duration
		for i, d := range waits {
			clk.Advance(d - waited)
			waited = d
			if ok, again := l.Allow(alice); !ok {
				t.Fatalf("at %v a second, caller %d of %d came back after %v as told and was refused (told %v)", perSecond, i, len(waits), d, again)
			}
		}
	}
}

// At the slowest rate, one a day, the wait for the next token is within
// the longest advice: a crowded refusal is told MaxRetryAfter itself,
// which the server's refusals share one status for.
func TestRateLimiterCrowdedAtTheSlowestRate(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, auth.MinRate, 1)
	alice := user("alice")
	l.Allow(alice)
	clk.Advance(time.Hour)
	first, second := l.Take(alice), l.Take(alice)
	if first.Crowded || first.RetryAfter > l.MaxRetryAfter() || !second.Crowded || second.RetryAfter != l.MaxRetryAfter() {
		t.Errorf("refusals told %+v then %+v; want at most %v, then %[3]v crowded", first, second, l.MaxRetryAfter())
	}
}
