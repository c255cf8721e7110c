package server

import (
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
	r := newRetryStatuses(auth.RateLimitError)
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
		})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = r.refusal(waits[i%len(waits)])
		}
	})
}
