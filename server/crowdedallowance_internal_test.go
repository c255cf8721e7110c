package server

import "testing"

// A publish rate's crowded allowance is a fifth of the rate, between
// freeRefusedCalls and freeCredentialCrowdedRefusals; no rate has none.
func TestCrowdedAllowanceIsAFifthOfTheRate(t *testing.T) {
	for _, tc := range []struct {
		perSecond float64
		want      int
	}{{0, 0}, {0.001, 100}, {1, 100}, {500, 100}, {1000, 200}, {10_000, 2000}, {1e6, 2000}} {
		if got := crowdedAllowance(tc.perSecond); got != tc.want {
			t.Errorf("crowdedAllowance(%v) = %d, want %d", tc.perSecond, got, tc.want)
		}
	}
}
