package server

import (
	"testing"
	"time"
)

// The tap may leave at most its budget of deadline timers at once; a timer
// stops counting once its deadline has passed, and a deadline a minute away
// or more is never left.
func TestHeldTimers(t *testing.T) {
	h := heldTimers{max: 3}
	now := time.Unix(1_000_000, 0)
	for i := range 3 {
		if !h.take(now, now.Add(5*time.Second)) {
			t.Fatalf("refusal %d of a budget of 3 deferred", i)
		}
	}
	if h.take(now, now.Add(time.Second)) {
		t.Fatal("a fourth timer held with a budget of 3")
	}
	if h.take(now.Add(5*time.Second), now.Add(6*time.Second)) {
		t.Fatal("a timer held while three have not passed their deadline")
	}
	later := now.Add(7 * time.Second)
	if !h.take(later, later.Add(time.Second)) {
		t.Fatal("a timer deferred once the others' deadlines had passed")
	}
	if h.take(later, later.Add(heldWindow*time.Second)) {
		t.Fatal("a deadline a minute away held")
	}
	if h.n != 1 {
		t.Fatalf("%d held, want 1", h.n)
	}
	hours := later.Add(3 * time.Hour) // every second counted has long passed
	for i := range 3 {
		if !h.take(hours, hours.Add(59*time.Second)) {
			t.Fatalf("refusal %d after a quiet spell deferred", i)
		}
	}
	if h.take(hours, hours) {
		t.Fatal("a fourth timer held after a quiet spell")
	}
}
