package server

import (
	"fmt"
	"testing"
	"time"
)

// An address's refusals are counted within a second, and the counters of
// addresses with none in the last second are dropped as others come, so
// that a stream of addresses refused once each holds at most about twice
// a second's worth.
func TestAddressRefusalsCountWithinASecondAndAreDropped(t *testing.T) {
	var a addressRefusals
	now := time.Unix(1000, 0)
	for i := 1; i <= 3; i++ {
		if n := a.add([]byte("10.0.0.1"), now); n != i {
			t.Fatalf("refusal %d counted as %d", i, n)
		}
	}
	if n := a.add([]byte("10.0.0.2"), now); n != 1 {
		t.Fatalf("another address's first refusal counted as %d", n)
	}
	if n := a.add([]byte("10.0.0.1"), now.Add(1100*time.Millisecond)); n != 1 {
		t.Fatalf("a refusal a second later counted as %d, want a new second's first", n)
	}
	for i := range 10 * minAddressRefusalSweep {
		now = now.Add(time.Millisecond)
		a.add(fmt.Appendf(nil, "10.1.%d.%d", i/256, i%256), now)
		if len(a.byAddr) > 2*1000+2 { // twice a second's, after a sweep
			t.Fatalf("%d addresses held after %d refused once each, a millisecond apart", len(a.byAddr), i+1)
		}
	}
	if len(a.byAddr) < 1000 {
		t.Fatalf("%d addresses held, want the last second's 1000 at least", len(a.byAddr))
	}
}
