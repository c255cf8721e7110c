// Package gctest reads and awaits the garbage collector's settings for
// tests of what tunes it (serve --gc-headroom, serveconfig's GC tuner).
// GOGC is process-wide: tests that use this package must not run in
// parallel with others that change it.
package gctest

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// GOGC is the collector's GOGC as the runtime has it now.
func GOGC() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// ClearEnv empties GOGC and GOMEMLIMIT in the environment for the rest of
// t, so that a tuner does not defer to the operator's choice.
func ClearEnv(t testing.TB) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
}

// AwaitGOGCAbove polls, for up to 10 seconds, until GOGC is above floor,
// calling collect (which should end in a collection, after which a tuner
// sets GOGC) and yielding between polls; otherwise it fails t with
// "GOGC still N " and what.
func AwaitGOGCAbove(t testing.TB, floor uint64, what string, collect func()) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); GOGC() <= floor; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d %s", GOGC(), what)
		}
		collect()
	}
}
