package auth_test

import (
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/testsupport/fakeclock"
)

// A credential's crowded refusals are counted by the second, from the first
// one: the count goes on within the second and starts again past it. A
// refusal that is not crowded, and a token taken, count nothing; another
// credential has a count of its own.
func TestRateLimiterCountsCrowdedRefusalsBySecond(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 0.1, 1) // a token every 10 s, which is the longest advice
	alice, bob := user("alice"), user("bob")
	if d := l.Take(alice); !d.OK || d.CrowdedInSecond != 0 {
		t.Fatalf("the burst: %+v, want a token and no count", d)
	}
	if d := l.Take(alice); d.OK || d.Crowded || d.CrowdedInSecond != 0 {
		t.Fatalf("the first refusal: %+v, want told the next token, uncrowded and uncounted", d)
	}
	want := 0
	take := func(what string) {
		t.Helper()
		want++
		if d := l.Take(alice); !d.Crowded || d.CrowdedInSecond != want {
			t.Fatalf("%s: %+v, want crowded, %d within the second", what, d, want)
		}
	}
	for range 3 {
		take("a refusal told the longest advice")
	}
	clk.Advance(500 * time.Millisecond)
	take("half a second on")
	clk.Advance(500 * time.Millisecond)
	take("a second after the first")
	if d := l.Take(bob); !d.OK {
		t.Fatalf("bob: %+v, want his own bucket's token", d)
	}
	l.Take(bob)
	if d := l.Take(bob); !d.Crowded || d.CrowdedInSecond != 1 {
		t.Fatalf("bob's first crowded refusal: %+v, want counted 1: alice's count is hers", d)
	}
	clk.Advance(time.Nanosecond)
	want = 0
	take("past the second")
	take("the next second's second")
}

// Callers that wait out their advice are never crowded, so never counted,
// however long they go on.
func TestRateLimiterDoesNotCountCallersThatWait(t *testing.T) {
	const callers, perSecond = 64, 1000
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, perSecond, 50)
	alice := user("alice")
	back := make([]time.Duration, callers) // when each comes back, from now
	for range 3 * perSecond {
		i := 0 // the caller due first
		for j := range back {
			if back[j] < back[i] {
				i = j
			}
		}
		due := back[i]
		clk.Advance(due)
		for j := range back {
			back[j] -= due
		}
		d := l.Take(alice)
		if d.Crowded || d.CrowdedInSecond != 0 {
			t.Fatalf("a caller that waited was crowded: %+v", d)
		}
		back[i] = d.RetryAfter // 0 after a token: it calls again at once
	}
}

// A credential that filled its slots stays crowded for twice the longest
// advice after its last refusal told that advice: held back for a while
// (as a server pauses its connections), it finds its slots free again, and
// without the memory a loop would fill them all, a second's worth of
// uncounted refusals, every time it came back. Its refusals then are told
// their slots, not the longest advice, and do not make the memory longer.
// Nor does its bucket fill meanwhile: while crowded it holds a twentieth of
// a second's tokens, so that a loop held back does not come back to a
// burst's worth of calls served at once. Past the memory its refusals are
// not crowded, and its bucket fills again.
func TestRateLimiterRemembersCallersThatIgnoredTheirAdvice(t *testing.T) {
	clk := fakeclock.New(now)
	l := newSpreadLimiter(t, clk, 100, 50) // the longest advice: 1s; held: 5 tokens
	alice := user("alice")
	for range 50 + 100 { // the burst, then the slots up to 1s
		l.Take(alice)
	}
	if d := l.Take(alice); !d.Crowded || d.RetryAfter != time.Second {
		t.Fatalf("past the slots: %+v, want crowded, told the longest advice", d)
	}
	clk.Advance(1500 * time.Millisecond) // held back: the horizon recedes
	for i := range 5 {
		if d := l.Take(alice); !d.OK {
			t.Fatalf("token %d of the 5 a crowded bucket holds: %+v", i, d)
		}
	}
	d := l.Take(alice)
	if !d.Crowded || d.CrowdedInSecond != 1 || d.RetryAfter >= time.Second {
		t.Fatalf("back within twice the longest advice: %+v, want crowded, counted in a new second, told its slot", d)
	}
	clk.Advance(500*time.Millisecond + time.Nanosecond) // 2s after the last refusal told the longest advice
	for i := range 5 {
		if d := l.Take(alice); !d.OK {
			t.Fatalf("token %d of 500ms, up to the crowded bucket's 5: %+v", i, d)
		}
	}
	if d := l.Take(alice); d.OK || d.Crowded || d.CrowdedInSecond != 0 {
		t.Fatalf("past twice the longest advice since the last refusal told it: %+v, want refused, not crowded", d)
	}
	clk.Advance(500 * time.Millisecond)
	for i := range 50 {
		if d := l.Take(alice); !d.OK {
			t.Fatalf("token %d of the bucket, full again: %+v", i, d)
		}
	}
}
