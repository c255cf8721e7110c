package gctest_test

import (
	"runtime/debug"
	"testing"

	"github.com/roomcast/roomcast/internal/testsupport/gctest"
)

// GOGC reads what SetGCPercent set, and AwaitGOGCAbove returns once
// collect has raised it, having called collect as often as it took.
func TestAwaitGOGCAbove(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if got := gctest.GOGC(); got != 100 {
		t.Fatalf("GOGC %d after SetGCPercent(100)", got)
	}
	calls := 0
	gctest.AwaitGOGCAbove(t, 100, "in the test", func() {
		if calls++; calls == 3 {
			debug.SetGCPercent(150)
		}
	})
	if got := gctest.GOGC(); calls != 3 || got != 150 {
		t.Fatalf("returned after %d calls with GOGC %d, want 3 calls and 150", calls, got)
	}
}
