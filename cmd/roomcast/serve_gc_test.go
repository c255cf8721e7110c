package main

import (
	"runtime"
	"testing"

	"github.com/roomcast/roomcast/internal/testsupport/gctest"
)

// --gc-headroom tunes the collector while serve runs, and serve gives Go's
// default back when it stops; without it, serve leaves the collector alone.
func TestServeGCHeadroom(t *testing.T) {
	gctest.ClearEnv(t)
	t.Run("off", func(t *testing.T) {
		startServe(t)
		runtime.GC()
		runtime.GC()
		if got := gctest.GOGC(); got != 100 {
			t.Errorf("GOGC %d without --gc-headroom, want 100", got)
		}
	})
	t.Run("on", func(t *testing.T) {
		startServe(t, "--gc-headroom", "1073741824")
		// The tuner sets GOGC after a collection, unless the server looks
		// idle: less than the headroom allocated per 10 s between
		// collections. Collections alone allocate next to nothing, and on
		// a loaded machine each one took long enough to look idle.
		gctest.AwaitGOGCAbove(t, 100, "with --gc-headroom", func() {
			gcSink = make([]byte, 32<<20)
			runtime.GC()
		})
	})
	if got := gctest.GOGC(); got != 100 {
		t.Errorf("GOGC %d once serve stopped, want 100", got)
	}
}

// gcSink keeps the headroom test's allocations from being optimised away.
var gcSink []byte
