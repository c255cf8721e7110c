package serveconfig

import (
	"runtime"
	"testing"
	"time"

	"github.com/roomcast/roomcast/internal/testsupport/gctest"
)

func TestGCPercentKeepsTheHeadroom(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom, allocated uint64
		gap                       time.Duration
		want                      int
	}{
		{4 * mib, 32 * mib, 8 * mib, time.Second, 800},           // the heap may grow by 32 MiB
		{32 * mib, 32 * mib, 8 * mib, time.Second, defaultGOGC},  // as large as the headroom: the default
		{500 * mib, 32 * mib, 8 * mib, time.Second, defaultGOGC}, // never less than the default
		{4 * mib, 32 * mib, 8 * mib, time.Minute, defaultGOGC},   // idle: 8 MiB a minute, less than 32 in 10 s
		{4 * mib, 32 * mib, 34 * mib, time.Minute, defaultGOGC},  // a cycle the headroom lengthened, slowly filled
		{4 * mib, 32 * mib, 36 * mib, 10 * time.Second, 800},     // the same filled within 10 s: busy
		{4 * mib, 32 * mib, 0, time.Second, defaultGOGC},         // nothing allocated
		{0, 32 * mib, 8 * mib, time.Second, 10_000},              // bounded
	} {
		if got := gcPercent(c.live, c.headroom, c.allocated, c.gap); got != c.want {
			t.Errorf("gcPercent(%d, %d, %d, %v) = %d, want %d", c.live, c.headroom, c.allocated, c.gap, got, c.want)
		}
	}
}

// gcSink keeps a test's allocations from being optimized away.
var gcSink []byte

// The tuner raises GOGC after a collection of this test's small heap, and
// Close gives the default back.
func TestGCTunerRaisesGOGCUntilClosed(t *testing.T) {
	gctest.ClearEnv(t)
	tuner, err := StartGCTuner(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	defer tuner.Close()
	if !tuner.Active() {
		t.Fatal("not active without GOGC or GOMEMLIMIT")
	}
	gctest.AwaitGOGCAbove(t, defaultGOGC, "after collections", func() {
		gcSink = make([]byte, 32<<20) // busy: allocating faster than the headroom per gcIdlePeriod, however long a collection takes on a loaded machine
		runtime.GC()                  // the tuner's cleanup runs after it, on the runtime's goroutine
	})
	if err := tuner.Close(); err != nil {
		t.Fatal(err)
	}
	if got := gctest.GOGC(); got != defaultGOGC {
		t.Errorf("GOGC %d after Close, want %d", got, defaultGOGC)
	}
	tuner.Close()     // idempotent
	tuner.collected() // as a cleanup armed before Close would run
	if got := gctest.GOGC(); got != defaultGOGC {
		t.Errorf("GOGC %d after a collection once closed, want %d", got, defaultGOGC)
	}
}

// GOGC or GOMEMLIMIT in the environment is the operator's choice: the
// tuner leaves the collector alone.
func TestGCTunerDefersToTheEnvironment(t *testing.T) {
	for env, value := range map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"} {
		t.Run(env, func(t *testing.T) {
			gctest.ClearEnv(t)
			t.Setenv(env, value)
			tuner, err := StartGCTuner(1 << 30)
			if err != nil {
				t.Fatal(err)
			}
			defer tuner.Close()
			if tuner.Active() {
				t.Errorf("active with %s set", env)
			}
			before := gctest.GOGC()
			runtime.GC()
			runtime.GC()
			if got := gctest.GOGC(); got != before {
				t.Errorf("GOGC went from %d to %d", before, got)
			}
		})
	}
	if _, err := StartGCTuner(0); err == nil {
		t.Error("a headroom of 0 accepted")
	}
}
