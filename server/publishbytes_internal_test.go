package server

import (
	"testing"
	"time"

	"github.com/roomcast/roomcast/auth"
)

// A credential that publishes steadily within its byte rate keeps its
// bucket: checking and charging a publish allocates nothing, where a bucket
// dropped whenever it was full and made again on the next charge cost every
// unary Publish two allocations.
func TestByteRateSteadyPublishesAllocateNothing(t *testing.T) {
	r := newByteRate(1<<20, 1<<20)
	clock := time.Unix(1, 0)
	r.now = func() time.Time { return clock }
	id := &auth.Identity{Subject: "anonymous@127.0.0.1", Method: auth.MethodAnonymous}
	r.charge(id, 64)
	allocs := testing.AllocsPerRun(100, func() {
		clock = clock.Add(time.Millisecond) // refills the bucket past full
		if r.owing(id) != 0 {
			t.Fatal("owing within the rate")
		}
		r.charge(id, 64)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per publish checked and charged, want 0", allocs)
	}
	// Owing still refuses, and a sweep still drops full buckets.
	r.charge(id, 4<<20)
	if r.owing(id) <= 0 {
		t.Error("a credential 3 MiB in debt owes nothing")
	}
	clock = clock.Add(time.Hour)
	r.sweep(clock)
	if len(r.buckets) != 0 {
		t.Errorf("%d buckets after a sweep of full ones", len(r.buckets))
	}
}

// A debt that a slow byte rate takes longer than the longest Duration to
// pay off still owes: converted as it was, its wait came out negative on
// amd64, and the credential owed nothing.
func TestByteRateSlowDebtOwes(t *testing.T) {
	r := newByteRate(1e-10, 1)
	clock := time.Unix(1, 0)
	r.now = func() time.Time { return clock }
	id := &auth.Identity{Subject: "alice", Method: auth.MethodAPIKey}
	r.charge(id, 1000)
	if wait := r.owing(id); wait <= 0 {
		t.Errorf("a debt of 999 bytes at 1e-10 bytes a second: owing %v, want a wait", wait)
	}
}
