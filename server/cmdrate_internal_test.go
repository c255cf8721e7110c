package server

import (
	"testing"
	"time"
)

func TestRefusalPausesDoubleUpToTheirCap(t *testing.T) {
	ss := &session{}
	for _, tc := range []struct {
		refused int
		want    time.Duration
	}{{0, time.Millisecond}, {1, time.Millisecond}, {2, 2 * time.Millisecond}, {10, 512 * time.Millisecond}, {11, time.Second}, {1000, time.Second}} {
		ss.refused.n = tc.refused
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
