package fakeclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyByAdvance(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	c := New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Advance(3 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(3 * time.Second)) {
		t.Errorf("after Advance(3s): Now = %v, want %v", got, start.Add(3*time.Second))
	}
}
