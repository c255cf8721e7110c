package bench

import (
	"math"
	"runtime/metrics"
)

// What a paced trial's latency is made of on the worker's side: how late
// its goroutines ran once runnable (the scheduler's queueing when one
// publish wakes a thousand subscribers on two cores), and how much of its
// CPU the garbage collector took. The worker reads the runtime's own
// counters at the start and the end of the measurement window; the
// collector's CPU counts are refreshed only as a collection ends, so its
// share spans the last collections before each read.

// RuntimeStats is what the worker's Go runtime reports over the
// measurement window.
type RuntimeStats struct {
	// SchedP50US and SchedP99US are percentiles of the time goroutines
	// spent runnable before running (/sched/latencies:seconds), in µs.
	SchedP50US float64 `json:"sched_p50_us"`
	SchedP99US float64 `json:"sched_p99_us"`
	// GCCycles is the garbage collections completed in the window.
	GCCycles uint64 `json:"gc_cycles"`
	// GCCPUShare is the part of the worker's CPU time the collector took
	// (/cpu/classes/gc/total over /cpu/classes/total, less idle: the
	// runtime's estimate), between the last collections before the
	// window's start and its end; nil when no collection ended in the
	// window, as the runtime then reports no change.
	GCCPUShare *float64 `json:"gc_cpu_share,omitempty"`
}

var runtimeSampleNames = []string{
	"/sched/latencies:seconds",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

// runtimeSnapshot is the runtime's counters at one moment.
type runtimeSnapshot []metrics.Sample

func readRuntime() runtimeSnapshot {
	s := make([]metrics.Sample, len(runtimeSampleNames))
	for i, name := range runtimeSampleNames {
		s[i].Name = name
	}
	metrics.Read(s)
	return s
}

// since is what happened between s0 and s; nil if a counter is missing.
func (s runtimeSnapshot) since(s0 runtimeSnapshot) *RuntimeStats {
	for i := range s {
		if s[i].Value.Kind() == metrics.KindBad || s0[i].Value.Kind() == metrics.KindBad {
			return nil
		}
	}
	h0, h1 := s0[0].Value.Float64Histogram(), s[0].Value.Float64Histogram()
	counts := make([]uint64, len(h1.Counts))
	for i := range counts {
		counts[i] = h1.Counts[i] - h0.Counts[i]
	}
	busy := (s[3].Value.Float64() - s[4].Value.Float64()) - (s0[3].Value.Float64() - s0[4].Value.Float64())
	st := &RuntimeStats{
		SchedP50US: histPercentile(counts, h1.Buckets, 0.50),
		SchedP99US: histPercentile(counts, h1.Buckets, 0.99),
		GCCycles:   s[1].Value.Uint64() - s0[1].Value.Uint64(),
	}
	if busy > 0 && st.GCCycles > 0 {
		share := (s[2].Value.Float64() - s0[2].Value.Float64()) / busy
		st.GCCPUShare = &share
	}
	return st
}

// histPercentile is the upper bound, in µs, of the bucket holding
// percentile q of counts; buckets are the runtime's boundaries in seconds
// (len(counts)+1 of them).
func histPercentile(counts []uint64, buckets []float64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q * float64(total))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen > rank {
			upper := buckets[i+1]
			if math.IsInf(upper, 1) { // the last bucket is unbounded
				upper = buckets[i]
			}
			return upper * 1e6
		}
	}
	return buckets[len(buckets)-1] * 1e6
}
