package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// gogc is the collector's GOGC as the runtime has it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// --gc-headroom tunes the collector while serve runs, and serve gives Go's
// default back when it stops; without it, serve leaves the collector alone.
func TestServeGCHeadroom(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	t.Run("off", func(t *testing.T) {
		startServe(t)
		runtime.GC()
		runtime.GC()
		if got := gogc(); got != 100 {
			t.Errorf("GOGC %d without --gc-headroom, want 100", got)
		}
	})
	t.Run("on", func(t *testing.T) {
		startServe(t, "--gc-headroom", "1073741824")
		for deadline := time.Now().Add(10 * time.Second); gogc() <= 100; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC still %d with --gc-headroom", gogc())
			}
			runtime.GC() // the tuner sets GOGC after a collection
		}
	})
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d once serve stopped, want 100", got)
	}
}
