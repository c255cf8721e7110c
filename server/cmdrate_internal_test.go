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
		ss.refused = tc.refused
		if got := ss.refusalPause(); got != tc.want {
			t.Errorf("after %d refusals: %v, want %v", tc.refused, got, tc.want)
		}
	}
}
