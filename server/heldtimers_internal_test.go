package server

import (
	"testing"
	"time"
)

// The tap may leave at most its budget of deadline timers at once; a timer
// stops counting once its deadline has passed, and a deadline heldWindow
// seconds away or more is never left.
func TestHeldTimers(t *testing.T) {
	now := time.Now()
	h := heldTimers{max: 3, perSecond: 3, start: now.Add(-time.Hour)}
	for i := range 3 {
		if !h.take(now, now.Add(5*time.Second), false) {
			t.Fatalf("refusal %d of a budget of 3 deferred", i)
		}
	}
	if h.take(now, now.Add(time.Second), false) {
		t.Fatal("a fourth timer held with a budget of 3")
	}
	if h.take(now.Add(5*time.Second), now.Add(6*time.Second), false) {
		t.Fatal("a timer held while three have not passed their deadline")
	}
	later := now.Add(7 * time.Second)
	if !h.take(later, later.Add(time.Second), false) {
		t.Fatal("a timer deferred once the others' deadlines had passed")
	}
	if h.take(later, later.Add(heldWindow*time.Second), false) {
		t.Fatal("a deadline heldWindow seconds away held")
	}
	if h.n != 1 {
		t.Fatalf("%d held, want 1", h.n)
	}
	hours := later.Add(3 * time.Hour) // every second counted has long passed
	for i := range 3 {
		if !h.take(hours, hours.Add(heldWindow*time.Second-2*time.Second), false) {
			t.Fatalf("refusal %d after a quiet spell deferred", i)
		}
	}
	if h.take(hours, hours, false) {
		t.Fatal("a fourth timer held after a quiet spell")
	}
}

// Seconds that pass in steps that wrap the window free what they should,
// and a caller whose time was read before another's (behind it) counts in
// the current second.
func TestHeldTimersWrap(t *testing.T) {
	start := time.Now()
	h := heldTimers{max: 2, perSecond: 2, start: start}
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	if !h.take(at(0), at(10), false) || !h.take(at(0), at(3), false) {
		t.Fatal("two timers deferred within a budget of 2")
	}
	if h.take(at(2), at(5), false) {
		t.Fatal("a third timer held")
	}
	if !h.take(at(5), at(14), false) { // the 3-second deadline passed
		t.Fatal("a timer deferred after one deadline passed")
	}
	if !h.take(at(12), at(20), false) { // the 10-second one too, 12 seconds later, past a wrap of the slots
		t.Fatal("a timer deferred after a second deadline passed")
	}
	if h.take(at(11), at(12), false) { // behind the last caller: counted now, and the budget is full
		t.Fatal("a caller behind another took a place the budget has not")
	}
	if !h.take(at(22), at(23), false) { // 14 and 20 passed, and the seconds after them
		t.Fatal("a timer deferred after every deadline passed")
	}
	if h.n != 1 {
		t.Fatalf("%d held, want 1", h.n)
	}
}

// Within the budget, at most perSecond timers of streams are held whose
// deadlines pass in one second, so that they cannot all fire at once, and
// unaryPerSecondFactor times that of unary calls; a deadline in another
// second has its own, and a second's place comes back once its deadlines
// have passed.
func TestHeldTimersPerSecond(t *testing.T) {
	start := time.Now()
	h := heldTimers{max: 100, perSecond: 2, start: start}
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	if !h.take(at(0), at(5_100), false) || !h.take(at(10), at(5_900), false) {
		t.Fatal("two timers of one second deferred with 2 a second")
	}
	if h.take(at(20), at(5_500), false) {
		t.Fatal("a third timer held whose deadline passes in the same second")
	}
	for range 2*unaryPerSecondFactor - 2 {
		if !h.take(at(20), at(5_500), true) {
			t.Fatal("a unary call's timer deferred within its factor of the second's budget")
		}
	}
	if h.take(at(20), at(5_500), true) {
		t.Fatal("a unary call's timer held past its factor of the second's budget")
	}
	if !h.take(at(30), at(6_000), false) {
		t.Fatal("a timer of the next second deferred")
	}
	if !h.take(at(7_000), at(21_500), false) || !h.take(at(7_000), at(21_600), false) { // the slot of 5,500's second again
		t.Fatal("the places of a second whose deadlines passed were not given back")
	}
	if h.n != 3 {
		t.Fatalf("%d held, want 3", h.n)
	}
}
