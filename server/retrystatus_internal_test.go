package server

import (
	"math"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/roomcast/roomcast/auth"
)

// retryDelay is the RetryInfo delay of err, or -1 without one.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			return r.GetRetryDelay().AsDuration()
		}
	}
	return -1
}

// A shared refusal says its wait rounded up to a whole millisecond, never
// less than it was told; waits of one millisecond share one status; a wait
// past maxSharedWait gets its own, exact.
func TestRetryStatusesShareByMillisecond(t *testing.T) {
	r := newRetryStatuses(auth.RateLimitError, 0)
	a, b := r.refusal(1100*time.Microsecond), r.refusal(1900*time.Microsecond)
	if a != b {
		t.Errorf("refusals for 1.1ms and 1.9ms: two statuses, want one shared")
	}
	if got := retryDelay(a); got != 2*time.Millisecond {
		t.Errorf("the refusal for 1.1ms says %v, want 2ms", got)
	}
	if st := status.Convert(a); st.Code() != codes.ResourceExhausted || st.Message() != "publish rate limit exceeded for this credential; retry after 2ms" {
		t.Errorf("status %v", st)
	}
	if got := retryDelay(r.refusal(2 * time.Millisecond)); got != 2*time.Millisecond {
		t.Errorf("the refusal for 2ms says %v", got)
	}
	long := maxSharedWait + 1500*time.Microsecond
	if got := retryDelay(r.refusal(long)); got != long {
		t.Errorf("the refusal for %v says %v, want it exactly", long, got)
	}
}

// BenchmarkRetryStatus compares a refusal's status built for it with a
// shared one, for waits spread over a second as a limiter advises them.
func BenchmarkRetryStatus(b *testing.B) {
	waits := make([]time.Duration, 1000)
	for i := range waits {
		waits[i] = time.Duration(i)*time.Millisecond + 123*time.Microsecond
	}
	b.Run("built", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = retryLater(waits[i%len(waits)], "History and Presence rate limit exceeded for this credential")
		}
	})
	b.Run("shared", func(b *testing.B) {
		r := newRetryStatuses(func(wait time.Duration) error {
			return retryLater(wait, "History and Presence rate limit exceeded for this credential")
		}, 0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = r.refusal(waits[i%len(waits)])
		}
	})
}

// A wait past the shared range is built for, whatever its size: a rate
// below about 1.1e-10 a second advises one near the longest Duration, which
// rounded up to a millisecond overflowed into a negative index, and the
// tap, on grpc-go's connection-reading goroutine, panicked.
func TestRetryStatusesTakeAnyWait(t *testing.T) {
	r := newRetryStatuses(auth.RateLimitError, 0)
	for _, wait := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Millisecond + 2, -time.Hour, math.MinInt64} {
		err := r.refusal(wait)
		if got, want := retryDelay(err), max(wait, 0); got != want {
			t.Errorf("the refusal for %v says %v, want %v", wait, got, want)
		}
	}
}

// A crowded refusal is told its rate's longest advice, which is past the
// statuses shared by millisecond at a read rate of 10 a second in bursts of
// 200 (20 s): it shares one status all the same, and the refusal, from
// the limiter's decision to its status, allocates nothing, in the flood the
// sharing is for.
func TestCrowdedRefusalsShareTheirStatus(t *testing.T) {
	cfg, err := newConfig([]Option{WithReadRate(10, 200)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAccess(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := &auth.Identity{Subject: "alice", Method: auth.MethodAPIKey}
	longest := a.reads.MaxRetryAfter()
	if longest <= maxSharedWait {
		t.Fatalf("the longest advice is %v, within the statuses shared by millisecond: the test tests nothing", longest)
	}
	var crowded int
	for range 1000 {
		if crowded, err = a.takeRead(id); crowded > 0 {
			break
		}
	}
	if crowded == 0 || retryDelay(err) != longest {
		t.Fatalf("after 1000 reads: crowded %v, %v; want crowded, told %v", crowded, err, longest)
	}
	if _, again := a.takeRead(id); again != err {
		t.Errorf("two crowded refusals built two statuses, want one shared")
	}
	n := testing.AllocsPerRun(100, func() {
		if crowded, _ := a.takeRead(id); crowded == 0 {
			t.Fatal("a refusal in the flood not crowded")
		}
	})
	if n != 0 {
		t.Errorf("a crowded refusal: %v allocations, want none", n)
	}
}
