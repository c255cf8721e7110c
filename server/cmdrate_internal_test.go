package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRefusalPausesDoubleUpToTheirCap(t *testing.T) {
	ss := &session{}
	for _, tc := range []struct {
		refused int
		want    time.Duration
	}{{0, time.Millisecond}, {1, time.Millisecond}, {2, 2 * time.Millisecond}, {10, 512 * time.Millisecond}, {11, time.Second}, {1000, time.Second}} {
		ss.streak.n = tc.refused
		if got := ss.refusalPause(); got != tc.want {
			t.Errorf("after %d refusals: %v, want %v", tc.refused, got, tc.want)
		}
	}
}

func TestRefusalsCountWithinTheSecond(t *testing.T) {
	var r refusals
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at   time.Duration
		want int
	}{{0, 1}, {500 * time.Millisecond, 2}, {time.Second, 3}, {time.Second + time.Millisecond, 1}, {1500 * time.Millisecond, 2}} {
		if got := r.add(t0.Add(tc.at)); got != tc.want {
			t.Fatalf("refusal %d at %v: %d within the second, want %d", i, tc.at, got, tc.want)
		}
	}
}

// A run of refusals lasts while they come less than streakQuiet apart, so
// a stream refused after each of its longest pauses keeps them long; one
// that has been quiet for longer starts again at the shortest.
func TestRefusalStreakOutlastsTheSecond(t *testing.T) {
	var s refusalStreak
	at := time.Unix(1000, 0)
	for i := 1; i <= 11; i++ { // the pauses of a stream that keeps sending
		if got := s.add(at); got != i {
			t.Fatalf("refusal %d: the run has %d", i, got)
		}
		at = at.Add(refusalPause(i))
	}
	const gap = maxRefusalPause + 10*time.Millisecond // the longest pause, and the read after it
	for i := 12; i <= 15; i++ {
		if got := s.add(at); got != i {
			t.Fatalf("refusal %d, %v after the one before: the run has %d, want %d", i, gap, got, i)
		}
		if d := refusalPause(s.n); d != maxRefusalPause {
			t.Fatalf("refusal %d: pause %v, want %v", i, d, maxRefusalPause)
		}
		at = at.Add(gap)
	}
	if got := s.add(at.Add(streakQuiet)); got != 1 {
		t.Errorf("a refusal after a quiet %v: the run has %d, want a new one", streakQuiet, got)
	}
}

// A command past the rates is refused with a status built once, not one a
// refusal (issue #13, attack (e)): the stream's rate has one, and the
// credential's share theirs by millisecond of their advice.
func TestCommandRefusalsAllocateNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate Option
	}{
		{"per stream", WithCommandRate(0.001, 1)},
		{"per credential", WithCredentialCommandRate(0.001, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, WithCommandRate(0, 0), WithCredentialCommandRate(0, 0), tc.rate)
			ss := openFake(t, srv, 1).ss
			if err := ss.rateLimitErr(); err != nil { // the burst
				t.Fatalf("the first command was refused: %v", err)
			}
			first := ss.rateLimitErr()
			if status.Code(first) != codes.ResourceExhausted {
				t.Fatalf("past the rate: %v, want RESOURCE_EXHAUSTED", first)
			}
			if allocs := testing.AllocsPerRun(100, func() { _ = ss.rateLimitErr() }); allocs != 0 {
				t.Errorf("a refusal took %v allocations, want 0", allocs)
			}
		})
	}
}
