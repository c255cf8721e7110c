package bench

import (
	"math"
	"runtime"
	"testing"
)

func TestHistPercentile(t *testing.T) {
	buckets := []float64{0, 1e-6, 1e-3, 1, math.Inf(1)}
	counts := []uint64{50, 49, 1, 0}
	for _, c := range []struct {
		q    float64
		want float64 // µs
	}{{0.25, 1}, {0.50, 1000}, {0.99, 1e6}} {
		if got := histPercentile(counts, buckets, c.q); got != c.want {
			t.Errorf("percentile %v = %v µs, want %v", c.q, got, c.want)
		}
	}
	if got := histPercentile([]uint64{0, 0, 0, 1}, buckets, 0.99); got != 1e6 {
		t.Errorf("in the unbounded bucket: %v µs, want its lower bound, 1e6", got)
	}
	if got := histPercentile(make([]uint64, 4), buckets, 0.99); got != 0 {
		t.Errorf("no samples: %v, want 0", got)
	}
}

func TestRuntimeSince(t *testing.T) {
	s0 := readRuntime()
	runtime.GC()
	st := readRuntime().since(s0)
	if st == nil {
		t.Fatal("a runtime counter is missing")
	}
	if st.GCCycles < 1 || st.SchedP99US < st.SchedP50US {
		t.Errorf("since a forced GC: %+v", *st)
	}
	if sh := st.GCCPUShare; sh != nil && (*sh < 0 || *sh > 1) {
		t.Errorf("since a forced GC, the collector's share of the CPU: %v", *sh)
	}
}
